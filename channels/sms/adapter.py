"""SMS through Twilio: signature check on the way in, the REST API (SDK) on the way out."""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels.base import BaseAdapter
from channels.sms.render import sms_body
from channels.twilio_signature import TwilioSignature
from config.loader import GatewayConfig
from config.settings import Settings
from conversations.messages import (
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TransientDeliveryError,
    mask_urn,
    urn_path,
)

log = logging.getLogger(__name__)

SEGMENT_LIMIT = 1600  # Twilio's maximum body; longer texts go as several messages, never truncated
SEND_TIMEOUT = 15.0
# Twilio error codes that mean "this recipient cannot be reached" or "has opted out".
UNREACHABLE_CODES = {21211, 21214, 21217, 21401, 21407, 21408, 21612, 21614, 30003, 30005, 30006}
OPTED_OUT_CODES = {21610, 30004}


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return max(float(value), 0.0) if value is not None else None
    except (TypeError, ValueError):
        return None


class _HttpClient(AsyncTwilioHttpClient):
    """Turns throttling and server errors into ``TransientDeliveryError`` with Retry-After."""

    async def request(self, *args: Any, **kwargs: Any) -> Response:
        try:
            response = await super().request(*args, **kwargs)
        except (OSError, asyncio.TimeoutError) as exc:
            raise TransientDeliveryError(f"cannot reach Twilio: {type(exc).__name__}: {exc}",
                                         code="network") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientDeliveryError(f"Twilio answered HTTP {response.status_code}",
                                         retry_after=_retry_after(response.headers),
                                         code=str(response.status_code))
        return response


def split_segments(text: str, limit: int = SEGMENT_LIMIT) -> list[str]:
    if len(text) <= limit:
        return [text]
    parts, rest = [], text
    while len(rest) > limit:
        cut = rest.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        parts.append(rest)
    return parts


class SmsAdapter(BaseAdapter):
    name: ClassVar[str] = "sms"

    def __init__(self, *, account_sid: str | None, auth_token: str | None, api_base: str,
                 from_number: str | None, public_url: str | None, country: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_base = api_base
        self.from_number = from_number
        self.public_url = public_url
        self.country = country
        self.sandbox = not (account_sid and auth_token)
        self._signature = TwilioSignature(auth_token, public_url)
        self._client: Client | None = None

    @classmethod
    def from_settings(cls, settings: Settings, config: GatewayConfig) -> "SmsAdapter":
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None,
            api_base=settings.twilio_api_base, from_number=settings.sms_number,
            public_url=settings.public_url, country=settings.country,
        )

    # -- inbound ----------------------------------------------------------------------------
    def verify(self, path_qs: str, params: Mapping[str, str], signature: str | None) -> None:
        """Check ``X-Twilio-Signature`` over ``GATEWAY_PUBLIC_URL`` + path; raise ``ForgedRequest``."""
        self._signature.verify(path_qs, params, signature)

    def status_callback_url(self) -> str | None:
        return f"{self.public_url}/webhooks/twilio/sms/status" if self.public_url else None

    # -- outbound ---------------------------------------------------------------------------
    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.account_sid, self.auth_token, http_client=_HttpClient())
            self._client.api.base_url = self.api_base
        return self._client

    async def send(self, message: OutboundMessage) -> SendResult:
        to = urn_path(message.to)
        body = sms_body(message.text)
        if self.sandbox:
            log.info("sandbox SMS to %s (%d characters): not sent, no Twilio credentials",
                     mask_urn(message.to), len(body))
            return SendResult(provider_message_id=f"SANDBOX-{uuid.uuid4().hex}", status="sandbox")
        if not self.from_number:
            raise PermanentDeliveryError("GATEWAY_SMS_NUMBER is not set", code="no_sender")
        first_sid = None
        for part in split_segments(body):
            first_sid = first_sid or await self._create(to, part)
        return SendResult(provider_message_id=first_sid, status="sent")

    async def _create(self, to: str, body: str) -> str:
        kwargs: dict[str, Any] = {"to": to, "from_": self.from_number, "body": body}
        if self.status_callback_url():
            kwargs["status_callback"] = self.status_callback_url()
        try:
            created = await asyncio.wait_for(self.client.messages.create_async(**kwargs), SEND_TIMEOUT)
        except asyncio.TimeoutError as exc:
            raise TransientDeliveryError("Twilio did not answer in time", code="timeout") from exc
        except TwilioRestException as exc:
            code = int(exc.code) if exc.code else None
            reason = f"Twilio error {exc.code or exc.status}: {exc.msg}"
            if exc.status in (401, 403) and code not in UNREACHABLE_CODES | OPTED_OUT_CODES:
                raise TransientDeliveryError(reason + " (check the Twilio credentials)",
                                             code=str(code or exc.status)) from exc
            raise PermanentDeliveryError(reason, code=str(code or exc.status),
                                         unreachable=code in UNREACHABLE_CODES,
                                         opted_out=code in OPTED_OUT_CODES) from exc
        return str(created.sid)

    async def reconcile(self, message: OutboundMessage, since: datetime) -> SendResult | None:
        """After a worker died mid-send: did Twilio already accept this text for this number?"""
        if self.sandbox:
            return None
        try:
            sent = await asyncio.wait_for(self.client.messages.list_async(
                to=urn_path(message.to), date_sent_after=since, limit=50), SEND_TIMEOUT)
        except (TwilioRestException, asyncio.TimeoutError, TransientDeliveryError) as exc:
            raise TransientDeliveryError(f"cannot check Twilio for an earlier send: {exc}",
                                         code="reconcile") from exc
        body = split_segments(sms_body(message.text))[0]
        for item in sent:
            if (item.body or "") == body and (not self.from_number or item.from_ == self.from_number):
                return SendResult(provider_message_id=str(item.sid), status="sent")
        return None

    async def close(self) -> None:
        if self._client is not None:
            http = self._client.http_client
            session = getattr(http, "session", None)
            if session is not None:
                await session.close()
