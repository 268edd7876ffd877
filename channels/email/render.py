"""Outbound email: a multipart/alternative (text + simple escaped HTML) with threading headers.

Header values are built from untrusted text (a citizen's subject, an officer's name), so every
value is cleaned of CR/LF and control characters before it reaches a header: no injection.
"""
from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping, Sequence
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from conversations.messages import OutboundMessage, urn_path

MAX_REFERENCES = 20
MAX_SUBJECT = 250
# The word before the reference in subjects, per language; ``email.subject_tag`` templates override.
SUBJECT_TAG = {"ar": "مرجع", "fr": "Réf", "en": "Ref", "tzm": "Réf"}
RTL_LANGUAGES = frozenset({"ar"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_MSGID = re.compile(r"^<[^<>\s@]+@[^<>\s@]+>$")
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:\\]+@[^@\s<>\"(),;:\\]+\.[^@\s<>\"(),;:\\]+$")


def header_safe(value: str | None, limit: int = 998) -> str:
    """One line of text, without CR, LF or other control characters."""
    return " ".join(_CONTROL.sub(" ", value or "").split())[:limit]


def valid_address(address: str) -> bool:
    return bool(_ADDRESS.match(address)) and len(address) <= 254


def message_id_for(message: OutboundMessage, domain: str) -> str:
    """Stable across retries of the same outbound message, so a resend is recognisable."""
    digest = hashlib.sha256(f"{message.message_id}\x00{message.to}\x00{message.text}".encode()).hexdigest()[:16]
    return f"<gw.{message.message_id}.{digest}@{domain}>"


def tagged_subject(subject: str | None, reference: str | None, language: str | None,
                   tags: Mapping[str, str] | None = None, default: str = "") -> str:
    """``subject`` with ``[Réf 4821-3307-5]`` appended unless the reference is already there."""
    text = header_safe(subject or default, MAX_SUBJECT)
    if reference:
        digits = re.sub(r"\D", "", reference)
        grouped = f"{digits[:4]}-{digits[4:8]}-{digits[8:]}" if len(digits) == 9 else reference
        if digits not in re.sub(r"\D", "", text):
            word = (tags or {}).get(language or "") or SUBJECT_TAG.get(language or "", "Ref")
            text = f"{text} [{header_safe(word, 40)} {grouped}]".strip()
    return text or "-"


def html_body(text: str, language: str | None) -> str:
    """The text as simple HTML: escaped, one paragraph per blank-line block, ``dir=rtl`` for Arabic."""
    direction = "rtl" if (language or "") in RTL_LANGUAGES else "ltr"
    lang = html.escape(language or "", quote=True)
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    body = "\n".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return (f'<!DOCTYPE html>\n<html lang="{lang}" dir="{direction}"><head><meta charset="utf-8"></head>'
            f'<body style="font-family:Arial,Helvetica,sans-serif;font-size:14px" dir="{direction}">\n'
            f"{body}\n</body></html>\n")


def _references(thread_ref: str | None, references: Sequence[str]) -> list[str]:
    chain = [r for r in (header_safe(x) for x in references) if _MSGID.match(r)]
    if thread_ref and _MSGID.match(header_safe(thread_ref)) and header_safe(thread_ref) not in chain:
        chain.append(header_safe(thread_ref))
    return chain[-MAX_REFERENCES:]


def build_email(message: OutboundMessage, *, from_address: str, from_name: str | None = None,
                reply_to: str | None = None, subject_tags: Mapping[str, str] | None = None,
                default_subject: str = "", message_id: str | None = None) -> EmailMessage:
    """The MIME message for ``message``; raises ``ValueError`` on an invalid recipient address."""
    to = urn_path(message.to).strip()
    if not valid_address(to):
        raise ValueError(f"not a valid email address: {to!r}")
    domain = from_address.rsplit("@", 1)[-1]
    msg = EmailMessage(policy=policy.default)
    local, _, _ = from_address.partition("@")
    msg["From"] = Address(display_name=header_safe(from_name, 120), username=local, domain=domain)
    msg["To"] = to
    if reply_to and valid_address(reply_to):
        msg["Reply-To"] = reply_to
    msg["Subject"] = tagged_subject(message.subject, message.reference, message.language, subject_tags,
                                    default_subject)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id or message_id_for(message, domain)
    parent = header_safe(message.thread_ref) if message.thread_ref else ""
    if parent and _MSGID.match(parent):
        msg["In-Reply-To"] = parent
    chain = _references(message.thread_ref, message.references)
    if chain:
        msg["References"] = " ".join(chain)
    if message.automatic:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"  # asks Exchange not to answer us with an out-of-office
    if message.language:
        msg["Content-Language"] = header_safe(message.language, 16)
    msg.set_content(message.text.replace("\r\n", "\n"), charset="utf-8")
    msg.add_alternative(html_body(message.text, message.language), subtype="html", charset="utf-8")
    return msg
