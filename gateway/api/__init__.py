"""The REST API ``/api/v1`` (handlers in ``routes``, operations in ``service``, the OpenAPI
document in ``openapi``)."""
from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    from gateway.api import citizens, reports, routes

    routes.setup(app)
    reports.setup(app)
    citizens.setup(app)
