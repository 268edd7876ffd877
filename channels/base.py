"""What every channel adapter looks like.

Each channel package has ``adapter.py`` (the class), ``parse.py`` (pure: provider payload ->
``InboundMessage``, no I/O) and ``render.py`` (outbound formatting). Adapters do no business
logic: they authenticate, parse, send, and raise typed errors; ``conversations`` decides.
"""
from __future__ import annotations

from typing import ClassVar

from config.loader import GatewayConfig
from config.settings import Settings
from conversations.messages import (  # re-exported for adapters
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TransientDeliveryError,
)

__all__ = ["BaseAdapter", "MalformedPayload", "ForgedRequest", "OutboundMessage", "PermanentDeliveryError",
           "SendResult", "TransientDeliveryError"]


class MalformedPayload(ValueError):
    """The payload is authentic but cannot be read: answer 400 with this reason."""


class ForgedRequest(PermissionError):
    """The request failed authentication: answer 403."""


class BaseAdapter:
    name: ClassVar[str]

    @classmethod
    def from_settings(cls, settings: Settings, config: GatewayConfig) -> "BaseAdapter":
        """Validate configuration and build the adapter; raise ``ConfigError`` naming the setting."""
        raise NotImplementedError

    async def send(self, message: OutboundMessage) -> SendResult:
        raise NotImplementedError

    async def close(self) -> None:
        return None
