"""Handlers for structured citizen actions (e.g. Telegram inline-button data ``rate:42:5``).

A channel's dialogue splits the action data at the first ``:`` and calls the handler
registered for the prefix; feature modules register theirs at import time.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conversations.ingest import DialogueContext

ActionHandler = Callable[["DialogueContext", str], None]
ACTION_HANDLERS: dict[str, ActionHandler] = {}


def register_action(prefix: str) -> Callable[[ActionHandler], ActionHandler]:
    def wrap(handler: ActionHandler) -> ActionHandler:
        ACTION_HANDLERS[prefix] = handler
        return handler
    return wrap


def dispatch_action(ctx: "DialogueContext", data: str) -> bool:
    """Run the handler for ``data``; False when no handler knows its prefix."""
    prefix, _, rest = data.partition(":")
    handler = ACTION_HANDLERS.get(prefix)
    if handler is None:
        return False
    handler(ctx, rest)
    return True
