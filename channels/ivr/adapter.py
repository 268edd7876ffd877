"""Twilio Voice: signature check on every IVR request, and fetching recordings from Twilio only.

The IVR answers in TwiML (``render.py``); it sends nothing itself: the caller's SMS go through
the outbox on the SMS channel.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

import aiohttp

from channels.base import BaseAdapter, OutboundMessage, PermanentDeliveryError, SendResult
from channels.twilio_signature import TwilioSignature
from config.loader import GatewayConfig
from config.settings import ConfigError, Settings
from conversations.messages import Attachment

log = logging.getLogger(__name__)

DEFAULT_RECORDING_HOSTS = ("api.twilio.com",)
FORMATS = {"mp3": "audio/mpeg", "wav": "audio/wav"}
MAX_REDIRECTS = 3
FETCH_TIMEOUT = 20.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RecordingRefused(PermissionError):
    """The recording URL is not one of Twilio's: it is never requested."""


class RecordingUnavailable(Exception):
    """Twilio could not give the recording now (network, 4xx/5xx, too large)."""


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None
    return parts.scheme, parts.hostname.lower(), port


class IvrAdapter(BaseAdapter):
    name: ClassVar[str] = "ivr"

    def __init__(self, *, account_sid: str | None, auth_token: str | None, api_base: str,
                 public_url: str | None, country: str, recording_hosts: tuple[str, ...] = DEFAULT_RECORDING_HOSTS,
                 recording_format: str = "mp3", max_recording_bytes: int = 25 * 1024 * 1024) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.public_url = public_url
        self.country = country
        self.sandbox = not (account_sid and auth_token)
        self.recording_format = recording_format
        self.max_recording_bytes = max_recording_bytes
        self._signature = TwilioSignature(auth_token, public_url)
        origins = {("https", host.lower(), 443) for host in recording_hosts}
        api_origin = _origin(api_base)
        if api_origin:
            origins.add(api_origin)
        self.recording_origins = frozenset(origins)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings, config: GatewayConfig) -> "IvrAdapter":
        options = config.channel_options("ivr")
        hosts = options.get("recording_hosts", list(DEFAULT_RECORDING_HOSTS))
        if not isinstance(hosts, list) or not all(isinstance(h, str) and h and "/" not in h for h in hosts):
            raise ConfigError("GATEWAY_CONFIG: channels.ivr.recording_hosts must be a list of host names, "
                              'e.g. ["api.twilio.com"]')
        fmt = str(options.get("recording_format", "mp3"))
        if fmt not in FORMATS:
            raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.recording_format must be one of {', '.join(FORMATS)}")
        max_mb = options.get("max_recording_mb", 25)
        if not isinstance(max_mb, int) or max_mb <= 0:
            raise ConfigError("GATEWAY_CONFIG: channels.ivr.max_recording_mb must be a positive whole number")
        return cls(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else None,
            api_base=settings.twilio_api_base, public_url=settings.public_url, country=settings.country,
            recording_hosts=tuple(hosts), recording_format=fmt, max_recording_bytes=max_mb * 1024 * 1024,
        )

    # -- inbound ----------------------------------------------------------------------------
    def verify(self, path_qs: str, params: Mapping[str, str], signature: str | None) -> None:
        """Check ``X-Twilio-Signature`` over ``GATEWAY_PUBLIC_URL`` + path; raise ``ForgedRequest``."""
        self._signature.verify(path_qs, params, signature)

    def recording_media_url(self, url: str, recording_sid: str) -> str:
        """The media URL for a recording, if ``url`` is this account's recording on a Twilio host.

        Raises ``RecordingRefused`` for anything else: another host, port or scheme, user info,
        another account, another resource, or a recording id that is not the one announced.
        """
        if self.sandbox or not self.account_sid:
            raise RecordingRefused("no Twilio credentials: recordings cannot be fetched in the sandbox")
        parts = urlsplit(url)
        if parts.username or parts.password or _origin(url) not in self.recording_origins:
            raise RecordingRefused("the recording URL is not on an allowed Twilio host")
        expected = re.compile(rf"^/2010-04-01/Accounts/{re.escape(self.account_sid)}/Recordings/"
                              rf"{re.escape(recording_sid)}$")
        if not expected.match(parts.path):
            raise RecordingRefused("the recording URL is not this account's recording")
        return f"{parts.scheme}://{parts.netloc}{parts.path}.{self.recording_format}"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT))
        return self._session

    async def fetch_recording(self, url: str, recording_sid: str) -> Attachment:
        """Download a recording from Twilio with the account's credentials.

        Credentials go only to allowed origins; a redirect (Twilio serves media from its storage)
        is followed without them, and only over HTTPS or to an allowed origin.
        """
        target = self.recording_media_url(url, recording_sid)
        auth = aiohttp.BasicAuth(self.account_sid or "", self.auth_token or "")
        try:
            for _ in range(MAX_REDIRECTS + 1):
                trusted = _origin(target) in self.recording_origins
                async with self.session.get(target, auth=auth if trusted else None,
                                            allow_redirects=False) as response:
                    if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                        nxt = urljoin(target, response.headers["Location"])
                        if urlsplit(nxt).scheme != "https" and _origin(nxt) not in self.recording_origins:
                            raise RecordingRefused("Twilio redirected the recording to a non-HTTPS address")
                        target = nxt
                        continue
                    if response.status != 200:
                        raise RecordingUnavailable(f"Twilio answered HTTP {response.status} for the recording")
                    content = await self._read_capped(response)
                    content_type = response.headers.get("Content-Type", FORMATS[self.recording_format])
                    return Attachment(content_type=content_type.split(";")[0].strip()[:255] or "audio/mpeg",
                                      filename=f"{recording_sid}.{self.recording_format}", size=len(content),
                                      content=content, provider_id=recording_sid)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RecordingUnavailable(f"cannot reach Twilio for the recording: {type(exc).__name__}") from exc
        raise RecordingUnavailable("too many redirects for the recording")

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_recording_bytes:
                raise RecordingUnavailable("the recording is larger than channels.ivr.max_recording_mb")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- outbound ---------------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> SendResult:
        raise PermanentDeliveryError("the IVR sends nothing itself; messages to callers go by SMS",
                                     code="voice_only")

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
