"""Email through any SMTP server (aiosmtplib); inbound comes from IMAP (``channels/email/imap.py``).

With no ``GATEWAY_SMTP_HOST`` the adapter is a sandbox: it builds the message (so threading
works end to end) and records it instead of sending.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, ClassVar

import aiosmtplib

from channels.base import BaseAdapter
from channels.email.parse import DEFAULT_MAX_ATTACHMENT_BYTES
from channels.email.render import build_email, valid_address
from config.loader import GatewayConfig
from config.settings import ConfigError, Settings
from conversations.messages import (
    OutboundMessage,
    PermanentDeliveryError,
    SendResult,
    TransientDeliveryError,
    mask_urn,
)

log = logging.getLogger(__name__)

SEND_TIMEOUT = 30.0
# Recipient-level refusals that mean "this address does not exist / will never accept".
UNREACHABLE_CODES = frozenset({550, 551, 553, 554})


@dataclass(frozen=True)
class EmailOptions:
    """``[channels.email]`` in the TOML configuration (all optional)."""

    folder: str = "INBOX"
    move_to: str | None = None
    poll_seconds: float = 60.0
    idle: bool = True
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    plus_addressing: bool = False
    rate_limit_per_hour: int = 10
    from_name: str | None = None
    timeout: float = 30.0

    @classmethod
    def from_config(cls, options: Mapping[str, Any]) -> "EmailOptions":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"GATEWAY_CONFIG: [channels.email] has unknown option(s) {', '.join(unknown)}; "
                              f"known options are {', '.join(sorted(known))}")
        values = dict(options)
        try:
            opts = cls(**values)
            for name in ("poll_seconds", "timeout"):
                if float(getattr(opts, name)) <= 0:
                    raise ValueError(f"{name} must be positive")
            for name in ("max_attachment_bytes", "rate_limit_per_hour"):
                if int(getattr(opts, name)) < 0:
                    raise ValueError(f"{name} must not be negative")
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"GATEWAY_CONFIG: [channels.email]: {exc}; see the README's email section") from exc
        return cls(folder=str(opts.folder), move_to=str(opts.move_to) if opts.move_to else None,
                   poll_seconds=float(opts.poll_seconds), idle=bool(opts.idle),
                   max_attachment_bytes=int(opts.max_attachment_bytes), plus_addressing=bool(opts.plus_addressing),
                   rate_limit_per_hour=int(opts.rate_limit_per_hour), from_name=opts.from_name,
                   timeout=float(opts.timeout))


def email_options(config: GatewayConfig) -> EmailOptions:
    return EmailOptions.from_config(config.channel_options("email"))


class EmailAdapter(BaseAdapter):
    name: ClassVar[str] = "email"

    def __init__(self, *, address: str | None, host: str | None, port: int | None = None, user: str | None = None,
                 password: str | None = None, tls: bool = True, options: EmailOptions | None = None,
                 subject_tags: Mapping[str, str] | None = None, default_subjects: Mapping[str, str] | None = None,
                 from_names: Mapping[str, str] | None = None) -> None:
        self.address = (address or "").lower() or None
        self.host = host
        self.tls = tls
        self.port = port or (587 if tls else 25)
        self.user = user
        self.password = password
        self.options = options or EmailOptions()
        self.subject_tags = dict(subject_tags or {})
        self.default_subjects = dict(default_subjects or {})
        self.from_names = dict(from_names or {})
        self.sandbox = not host
        # The sandbox keeps the last messages it would have sent (for `simulate` and tests).
        self.sandbox_outbox: deque[EmailMessage] = deque(maxlen=200)

    @classmethod
    def from_settings(cls, settings: Settings, config: GatewayConfig) -> "EmailAdapter":
        options = email_options(config)
        if settings.smtp_host and not settings.email_address:
            raise ConfigError("GATEWAY_EMAIL_ADDRESS is not set: outbound email needs a From address")
        if settings.email_address and not valid_address(settings.email_address):
            raise ConfigError(f"GATEWAY_EMAIL_ADDRESS={settings.email_address!r} is not an email address; "
                              "write it like complaints@example.org")
        tags, subjects, names = {}, {}, {}
        for lang, table in config.templates.items():
            email_table = table.get("email") if isinstance(table, Mapping) else None
            if isinstance(email_table, Mapping):
                if isinstance(email_table.get("subject_tag"), str):
                    tags[lang] = email_table["subject_tag"]
                if isinstance(email_table.get("default_subject"), str):
                    subjects[lang] = email_table["default_subject"]
                if isinstance(email_table.get("from_name"), str):
                    names[lang] = email_table["from_name"]
        return cls(
            address=settings.email_address, host=settings.smtp_host, port=settings.smtp_port,
            user=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            tls=settings.smtp_tls, options=options, subject_tags=tags, default_subjects=subjects, from_names=names,
        )

    def reply_to(self, reference: str | None) -> str | None:
        """``complaints+<reference>@…`` when plus-addressing is on, so any reply finds its complaint."""
        if not (self.options.plus_addressing and self.address and reference):
            return None
        local, _, domain = self.address.partition("@")
        return f"{local}+{reference}@{domain}"

    def render(self, message: OutboundMessage) -> EmailMessage:
        lang = message.language or ""
        from_name = self.options.from_name or self.from_names.get(lang)
        return build_email(message, from_address=self.address or "gateway@localhost.invalid", from_name=from_name,
                           reply_to=self.reply_to(message.reference), subject_tags=self.subject_tags,
                           default_subject=self.default_subjects.get(lang, ""))

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            mime = self.render(message)
        except ValueError as exc:
            raise PermanentDeliveryError(str(exc), code="invalid_address", unreachable=True) from exc
        message_id = str(mime["Message-ID"])
        if self.sandbox:
            self.sandbox_outbox.append(mime)
            log.info("sandbox email to %s: not sent, no GATEWAY_SMTP_HOST", mask_urn(message.to))
            return SendResult(provider_message_id=message_id, status="sandbox", thread_ref=message_id)
        await self._smtp_send(mime)
        return SendResult(provider_message_id=message_id, status="sent", thread_ref=message_id)

    async def _smtp_send(self, mime: EmailMessage) -> None:
        implicit_tls = self.tls and self.port == 465
        try:
            errors, response = await aiosmtplib.send(
                mime, hostname=self.host, port=self.port, username=self.user, password=self.password,
                use_tls=implicit_tls, start_tls=self.tls and not implicit_tls, timeout=self.options.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused is not None else 550
            reason = f"SMTP {code} {refused.message if refused is not None else 'recipient refused'}"
            if 400 <= code < 500:
                raise TransientDeliveryError(reason, code=str(code)) from exc
            raise PermanentDeliveryError(reason, code=str(code), unreachable=code in UNREACHABLE_CODES) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise TransientDeliveryError(f"SMTP {exc.code} {exc.message} (check GATEWAY_SMTP_USER/_PASSWORD)",
                                         code=str(exc.code)) from exc
        except aiosmtplib.SMTPConnectError as exc:  # includes a refusing greeting: not the recipient's fault
            raise TransientDeliveryError(f"cannot connect to the SMTP server: {exc}", code="connect") from exc
        except aiosmtplib.SMTPResponseException as exc:
            reason = f"SMTP {exc.code} {exc.message}"
            if 400 <= exc.code < 500 or exc.code < 200:
                raise TransientDeliveryError(reason, code=str(exc.code)) from exc
            raise PermanentDeliveryError(reason, code=str(exc.code)) from exc
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            raise TransientDeliveryError(f"cannot reach the SMTP server: {type(exc).__name__}: {exc}",
                                         code="network") from exc
        if errors:
            code, text = next(iter(errors.values()))
            raise PermanentDeliveryError(f"SMTP {code} {text}", code=str(code),
                                         unreachable=code in UNREACHABLE_CODES)
        log.debug("SMTP accepted: %s", response)
