"""The web console at ``/console/`` for agents, officers, supervisors and administrators."""
from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    from gateway.console import views

    views.setup(app)
