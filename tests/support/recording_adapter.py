"""A test double for channels whose real adapter is not in this branch (Telegram, e-mail):
it records what the outbox delivery sends, so tests can assert a reply reached the channel."""
from __future__ import annotations

import itertools
from typing import ClassVar

from channels.base import BaseAdapter, OutboundMessage, SendResult


class RecordingAdapter(BaseAdapter):
    name: ClassVar[str] = "recording"

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sent: list[OutboundMessage] = []
        self._ids = itertools.count(1)

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(provider_message_id=f"{self.channel}-{next(self._ids)}", status="sent")

    def to(self, urn: str) -> list[OutboundMessage]:
        return [m for m in self.sent if m.to == urn]
