"""Telegram through the Bot API: secret-token check on the way in, python-telegram-bot's ``Bot`` out.

Telegram's limits (about 30 messages a second per bot, one a second per chat) are kept by a
limiter that makes senders wait their turn: nothing is dropped. Errors become the typed
delivery errors; ``conversations.delivery`` decides about retries and fallbacks.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from telegram import Bot
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from channels.base import BaseAdapter, ForgedRequest
from channels.telegram.render import reply_markup, split_text
from config.loader import GatewayConfig
from config.settings import ConfigError, Settings
from conversations.messages import (
    DeliveryError,
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TransientDeliveryError,
    mask_urn,
    urn_path,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024  # what the cloud Bot API lets a bot download
DEFAULT_MESSAGES_PER_SECOND = 30.0
DEFAULT_PER_CHAT_INTERVAL = 1.0
REQUEST_TIMEOUT = 15.0
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
ANSWER_CALLBACK = "answer_callback_query"
_UNREACHABLE_HINTS = ("chat not found", "user not found", "user is deactivated", "peer_id_invalid")


class FileTooLarge(Exception):
    """The file is larger than the configured limit (``size`` in bytes when known)."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"file of {size if size is not None else 'unknown'} bytes is over the limit of {limit}")
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class FetchedFile:
    data: bytes
    file_path: str | None


class RateLimiter:
    """At most ``per_second`` sends per bot, and one per ``per_chat_interval`` to each chat.

    Senders wait (FIFO per chat, so a chat's messages keep their order); none is refused.
    ``clock`` and ``sleep`` are injectable so the arithmetic can be tested without waiting.
    """

    def __init__(self, per_second: float = DEFAULT_MESSAGES_PER_SECOND,
                 per_chat_interval: float = DEFAULT_PER_CHAT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.spacing = 1.0 / per_second if per_second > 0 else 0.0
        self.per_chat_interval = max(per_chat_interval, 0.0)
        self.clock = clock
        self.sleep = sleep
        self._global_lock = asyncio.Lock()
        self._next_global = 0.0
        self._chat_locks: dict[str, asyncio.Lock] = {}
        self._next_chat: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, chat: str) -> AsyncIterator[None]:
        """Hold ``chat``'s turn while sending one message to it."""
        lock = self._chat_locks.setdefault(chat, asyncio.Lock())
        async with lock:
            wait = self._next_chat.get(chat, 0.0) - self.clock()
            if wait > 0:
                await self.sleep(wait)
            async with self._global_lock:
                wait = self._next_global - self.clock()
                if wait > 0:
                    await self.sleep(wait)
                self._next_global = max(self._next_global, self.clock()) + self.spacing
            try:
                yield
            finally:
                self._next_chat[chat] = self.clock() + self.per_chat_interval
        self._forget_idle()

    def _forget_idle(self) -> None:
        if len(self._chat_locks) < 10_000:
            return
        now = self.clock()
        for chat in [c for c, lock in self._chat_locks.items() if not lock.locked()
                     and self._next_chat.get(c, 0.0) <= now]:
            self._chat_locks.pop(chat, None)
            self._next_chat.pop(chat, None)


def _seconds(value: int | float | timedelta | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return max(value.total_seconds(), 0.0)
    return max(float(value), 0.0)


def _retry_after(exc: RetryAfter) -> float | None:
    # Since v22.2 the value is kept as a timedelta; the public int property warns of a type change.
    value = getattr(exc, "_retry_after", None)
    if value is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = exc.retry_after
    return _seconds(value)


def _option(options: Mapping[str, Any], name: str, default: float, *, minimum: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"[channels.telegram] {name} = {value!r} is not valid; give a number >= {minimum} "
                          f"(default {default}) in the GATEWAY_CONFIG file")
    return value


class TelegramAdapter(BaseAdapter):
    name: ClassVar[str] = "telegram"

    def __init__(self, *, token: str | None, secret_token: str | None, api_base: str,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 messages_per_second: float = DEFAULT_MESSAGES_PER_SECOND,
                 per_chat_interval: float = DEFAULT_PER_CHAT_INTERVAL,
                 request_timeout: float = REQUEST_TIMEOUT) -> None:
        self.token = token
        self.secret_token = secret_token
        self.api_base = api_base.rstrip("/")
        self.max_file_bytes = int(max_file_bytes)
        self.request_timeout = request_timeout
        self.sandbox = not token
        self.limiter = RateLimiter(messages_per_second, per_chat_interval)
        self._bot: Bot | None = None
        self._init_lock = asyncio.Lock()
        self._initialised = False

    @classmethod
    def from_settings(cls, settings: Settings, config: GatewayConfig) -> "TelegramAdapter":
        token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else None
        secret = settings.telegram_secret_token.get_secret_value() if settings.telegram_secret_token else None
        if secret is not None and not SECRET_TOKEN.match(secret):
            raise ConfigError("GATEWAY_TELEGRAM_SECRET_TOKEN may only hold 1-256 characters A-Z a-z 0-9 _ -; "
                              "generate one with e.g. `openssl rand -hex 32`")
        if token is not None and ":" not in token:
            raise ConfigError("GATEWAY_TELEGRAM_BOT_TOKEN does not look like a bot token (<bot id>:<secret>, "
                              "as @BotFather gives it)")
        options = config.channel_options("telegram")
        return cls(
            token=token, secret_token=secret, api_base=settings.telegram_api_base or "https://api.telegram.org",
            max_file_bytes=int(_option(options, "max_file_bytes", DEFAULT_MAX_FILE_BYTES, minimum=1)),
            messages_per_second=_option(options, "messages_per_second", DEFAULT_MESSAGES_PER_SECOND, minimum=0),
            per_chat_interval=_option(options, "per_chat_interval", DEFAULT_PER_CHAT_INTERVAL, minimum=0),
            request_timeout=_option(options, "request_timeout", REQUEST_TIMEOUT, minimum=0.1),
        )

    # -- inbound ----------------------------------------------------------------------------
    def verify(self, header: str | None) -> None:
        """Compare ``X-Telegram-Bot-Api-Secret-Token`` in constant time; raise ``ForgedRequest``."""
        if not self.secret_token:
            raise ForgedRequest("Telegram webhooks are disabled: set GATEWAY_TELEGRAM_SECRET_TOKEN (and pass it "
                                "to setWebhook with `gateway telegram set-webhook`)")
        if not header:
            raise ForgedRequest("missing X-Telegram-Bot-Api-Secret-Token")
        if not hmac.compare_digest(header.encode(), self.secret_token.encode()):
            raise ForgedRequest("X-Telegram-Bot-Api-Secret-Token does not match")

    @property
    def service_address(self) -> str | None:
        """The bot, as ``bot<id>`` (the id is the token's first part; no secret in it)."""
        return f"bot{self.token.split(':', 1)[0]}" if self.token else None

    # -- the Bot API client -------------------------------------------------------------------
    @property
    def bot(self) -> Bot:
        if self.token is None:
            raise RuntimeError("no GATEWAY_TELEGRAM_BOT_TOKEN: the Telegram adapter is in sandbox mode")
        if self._bot is None:
            timeout = self.request_timeout
            request = HTTPXRequest(connection_pool_size=64, read_timeout=timeout, write_timeout=timeout,
                                   connect_timeout=timeout, pool_timeout=timeout, media_write_timeout=timeout * 4)
            self._bot = Bot(self.token, base_url=f"{self.api_base}/bot", base_file_url=f"{self.api_base}/file/bot",
                            request=request, get_updates_request=HTTPXRequest(connection_pool_size=1))
        return self._bot

    async def _ready(self) -> Bot:
        bot = self.bot
        if not self._initialised:
            async with self._init_lock:
                if not self._initialised:
                    await self._call(bot.initialize())
                    self._initialised = True
        return bot

    def _scrub(self, text: str) -> str:
        return text.replace(self.token, "<token>") if self.token else text

    async def _call(self, call: Awaitable[Any], *, unreachable_on_forbidden: bool = True) -> Any:
        """Await a Bot API call, turning python-telegram-bot's errors into delivery errors."""
        try:
            return await call
        except RetryAfter as exc:
            raise TransientDeliveryError("Telegram flood control: retry later",
                                         retry_after=_retry_after(exc), code="429") from exc
        except Forbidden as exc:
            raise PermanentDeliveryError(f"Telegram refused: {self._scrub(exc.message)}", code="403",
                                         unreachable=unreachable_on_forbidden) from exc
        except ChatMigrated as exc:
            raise PermanentDeliveryError("the group chat moved to a supergroup", code="chat_migrated",
                                         unreachable=unreachable_on_forbidden) from exc
        except InvalidToken as exc:  # its message contains the token: never repeat it
            raise TransientDeliveryError("Telegram rejected the bot token; check GATEWAY_TELEGRAM_BOT_TOKEN",
                                         code="401") from exc
        except BadRequest as exc:
            reason = self._scrub(exc.message)
            lowered = reason.lower()
            raise PermanentDeliveryError(f"Telegram refused the request: {reason}", code="400",
                                         unreachable=unreachable_on_forbidden
                                         and any(h in lowered for h in _UNREACHABLE_HINTS)) from exc
        except (TimedOut, NetworkError, Conflict) as exc:
            raise TransientDeliveryError(f"cannot reach Telegram: {type(exc).__name__}: {self._scrub(str(exc))}",
                                         code="timeout" if isinstance(exc, TimedOut) else "network") from exc
        except TelegramError as exc:
            raise TransientDeliveryError(f"Telegram error: {self._scrub(str(exc))}", code="telegram") from exc

    # -- outbound ---------------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> SendResult:
        method = message.meta.get("method")
        if self.sandbox:
            log.info("sandbox Telegram %s to %s (%d characters): not sent, no GATEWAY_TELEGRAM_BOT_TOKEN",
                     method or "message", mask_urn(message.to), len(message.text))
            return SendResult(provider_message_id=f"SANDBOX-{uuid.uuid4().hex}", status="sandbox")
        bot = await self._ready()
        if method == ANSWER_CALLBACK:
            query_id = str(message.meta.get("callback_query_id") or "")
            if not query_id:
                raise PermanentDeliveryError("no callback_query_id to answer", code="no_callback")
            await self._call(bot.answer_callback_query(query_id, text=message.text.strip()[:200] or None),
                             unreachable_on_forbidden=False)
            return SendResult(provider_message_id=f"cbq:{query_id}", status="sent")
        if method:
            raise PermanentDeliveryError(f"unknown Telegram method {method!r}", code="bad_method")
        try:
            chat_id = int(urn_path(message.to))
        except ValueError as exc:
            raise PermanentDeliveryError(f"not a Telegram chat: {mask_urn(message.to)}", code="bad_urn",
                                         unreachable=True) from exc
        try:
            markup = reply_markup(message.buttons, message.meta)
        except ValueError as exc:
            raise PermanentDeliveryError(str(exc), code="bad_buttons") from exc
        chunks = split_text(message.text)
        first_id: str | None = None
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            async with self.limiter.slot(str(chat_id)):
                sent = await self._call(bot.send_message(chat_id, chunk, reply_markup=markup if last else None,
                                                         disable_web_page_preview=True))
            first_id = first_id or f"{chat_id}:{sent.message_id}"
        return SendResult(provider_message_id=first_id, status="sent")

    # -- media ------------------------------------------------------------------------------
    async def fetch_file(self, file_id: str, max_bytes: int | None = None) -> FetchedFile:
        """``getFile`` then download through the Bot API; ``FileTooLarge`` above the limit."""
        limit = max_bytes or self.max_file_bytes
        if self.sandbox:
            raise PermanentDeliveryError("sandbox: no GATEWAY_TELEGRAM_BOT_TOKEN to download files", code="sandbox")
        bot = await self._ready()
        try:
            file = await self._call(bot.get_file(file_id), unreachable_on_forbidden=False)
        except PermanentDeliveryError as exc:
            if "too big" in exc.reason.lower():
                raise FileTooLarge(None, limit) from exc
            raise
        if file.file_size is not None and file.file_size > limit:
            raise FileTooLarge(file.file_size, limit)
        if not file.file_path:
            raise PermanentDeliveryError("Telegram gave no file_path for this file", code="no_file_path")
        data = bytes(await self._call(file.download_as_bytearray(), unreachable_on_forbidden=False))
        if len(data) > limit:
            raise FileTooLarge(len(data), limit)
        # The absolute path carries the token: keep only Telegram's relative path (e.g. photos/file_1.jpg).
        return FetchedFile(data, file.file_path.removeprefix(bot.base_file_url + "/"))

    # -- administration ---------------------------------------------------------------------
    async def set_webhook(self, url: str, allowed_updates: list[str] | None = None,
                          max_connections: int | None = None) -> bool:
        """Register ``url`` with the secret token (``gateway telegram set-webhook``)."""
        bot = await self._ready()
        return bool(await self._call(bot.set_webhook(
            url, secret_token=self.secret_token, allowed_updates=allowed_updates, max_connections=max_connections)))

    async def close(self) -> None:
        if self._bot is not None:
            try:
                await self._bot.shutdown()
            except Exception:  # closing must not fail shutdown
                log.debug("closing the Telegram client failed", exc_info=True)
            self._bot = None
            self._initialised = False


__all__ = ["TelegramAdapter", "RateLimiter", "FileTooLarge", "FetchedFile", "ANSWER_CALLBACK", "DeliveryError"]
