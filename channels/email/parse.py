"""RFC 5322 bytes -> ``InboundMessage``. Pure: no I/O, testable from recorded ``.eml`` files.

Uses the standard ``email`` package with ``policy.default`` throughout: RFC 2047 subjects and
names, charsets (UTF-8, windows-1256, ISO-8859-6, ISO-8859-1 …), text/plain preferred over
HTML, attachments kept up to a size limit. Recognises auto-replies and delivery status
notifications (bounces) and reports them in ``meta`` so the dialogue can stay silent.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from typing import Any

from channels.base import MalformedPayload
from channels.email.html import html_to_text
from channels.email.quotes import strip_reply
from conversations.messages import Attachment, InboundMessage

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_TEXT = 100_000
MAX_ID = 255  # messages.provider_message_id
# A message with thousands of parts, or parts nested hundreds deep, is a bomb, not a complaint.
MAX_MIME_PARTS = 100
MAX_MIME_DEPTH = 10
_MSGID = re.compile(r"<[^<>\s]{1,990}>")
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$")
_SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|tr|réf|ref|aw|wg|رد|إعادة توجيه|توجيه)\s*(?:\[\d+\])?\s*:\s*)+",
                             re.IGNORECASE)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:\[?auto(?:matic)?[- ]?(?:reply|response)\]?|auto:|autoreply|out of (?:the )?office|"
    r"away from (?:the )?office|on vacation|réponse automatique|reponse automatique|absence du bureau|"
    r"absent(?:e)? du bureau|message d'absence|notification d'absence|en congés?\b|"
    r"رد تلقائي|رد آلي|الرد الآلي|الرد التلقائي|خارج المكتب|غائب عن المكتب)",
    re.IGNORECASE,
)
_BOUNCE_SENDER = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon)(?:[+@]|$)", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"(?:undeliver|undelivered mail|delivery status notification|delivery (?:has )?failed|failure notice|"
    r"mail delivery (?:failed|failure|subsystem)|returned mail|non remis|échec de (?:la )?remise|"
    r"message non délivré|فشل (?:في )?(?:التسليم|الإرسال)|تعذر تسليم)",
    re.IGNORECASE,
)
_BODY_MSGID = re.compile(r"^\s*Message-ID:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_TRACE_HEADERS = ("from", "to", "cc", "date", "subject")
_ARABIC = re.compile(r"[\u0600-\u06ff]")


def _header(msg: Message, name: str) -> str | None:
    """A header as text, never raising on broken encodings (those become defects)."""
    try:
        value = msg.get(name)
    except Exception:  # noqa: BLE001 - a broken header must not hide the rest of the message
        raw = msg.get_all(name, failobj=[]) if hasattr(msg, "get_all") else []
        value = str(raw[0]) if raw else None
    if value is None:
        return None
    return " ".join(str(value).split())


def message_ids(value: str | None) -> list[str]:
    """The ``<…>`` ids in a Message-ID, In-Reply-To or References header, in order."""
    return _MSGID.findall(value or "")


def _stable_id(msg: Message, raw: bytes) -> str:
    """For a message without Message-ID: a hash of what does not change between fetches."""
    digest = hashlib.sha256()
    for name in _TRACE_HEADERS:
        digest.update(f"{name}:{_header(msg, name) or ''}\n".encode("utf-8", "replace"))
    _, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        _, _, body = raw.partition(b"\n\n")
    digest.update(body)
    return f"<{digest.hexdigest()[:48]}@no-message-id.invalid>"


def _provider_id(message_id: str) -> str:
    if len(message_id) <= MAX_ID:
        return message_id
    return f"<{hashlib.sha256(message_id.encode()).hexdigest()}@long-message-id.invalid>"


def _addresses(msg: Message, *names: str) -> list[Address]:
    found: list[Address] = []
    for name in names:
        try:
            for header in msg.get_all(name, failobj=[]):
                found.extend(getattr(header, "addresses", ()) or ())
        except Exception:  # noqa: BLE001
            continue
    return found


def _sender(msg: Message) -> tuple[str, str | None]:
    addresses = _addresses(msg, "From") or _addresses(msg, "Sender")
    for address in addresses:
        spec = (address.addr_spec or "").strip().lower()
        if _ADDRESS.match(spec):
            name = " ".join((address.display_name or "").split()) or None
            return spec, name
    raise MalformedPayload("no valid sender address in From")


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in a declared (or undeclared) charset; tolerant of wrong labels."""
    label = (charset or "").strip().lower()
    aliases = {"windows-1256": "cp1256", "x-mac-arabic": "mac_arabic", "iso-8859-6-i": "iso8859_6",
               "iso-8859-8-i": "iso8859_8", "unicode-1-1-utf-7": "utf-7", "cp-850": "cp850"}
    label = aliases.get(label, label)
    if label and label not in ("us-ascii", "ascii", "unknown-8bit", "x-unknown", "default"):
        try:
            return data.decode(label)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    arabic = data.decode("cp1256", "replace")
    latin = data.decode("latin-1")
    non_ascii = sum(1 for b in data if b >= 0x80) or 1
    return arabic if len(_ARABIC.findall(arabic)) > non_ascii / 2 else latin


def _part_text(part: Message) -> str:
    """A text part's content: transfer encoding undone, charset decoded (with fallbacks)."""
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return _decode_bytes(data, part.get_content_charset())
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        return ""
    return content if isinstance(content, str) else ""


def _body_parts(msg: Message) -> tuple[Message | None, Message | None]:
    """The first text/plain and text/html parts that are not attachments."""
    plain = html = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        if part.get_content_maintype() == "message":
            continue
        disposition = (part.get_content_disposition() or "").lower()
        if disposition == "attachment" or (part.get_filename() and disposition != "inline"):
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain" and plain is None:
            plain = part
        elif ctype == "text/html" and html is None:
            html = part
    return plain, html


def _inside_rfc822(msg: Message) -> set[int]:
    """ids of the parts that belong to an attached message (forwarded mail, a bounce's original)."""
    inner: set[int] = set()
    for part in msg.walk():
        if part.get_content_type() in ("message/rfc822", "message/delivery-status", "text/rfc822-headers"):
            for sub in part.walk():
                if sub is not part:
                    inner.add(id(sub))
    return inner


def _attachments(msg: Message, body_parts: Iterable[Message | None], limit: int) -> tuple[list[Attachment],
                                                                                          list[dict[str, Any]]]:
    skip = {id(p) for p in body_parts if p is not None} | _inside_rfc822(msg)
    kept: list[Attachment] = []
    oversize: list[dict[str, Any]] = []
    total = 0
    for part in msg.walk():
        if id(part) in skip or part is msg:
            continue
        ctype = part.get_content_type()
        if part.is_multipart() and ctype != "message/rfc822":
            continue
        if ctype in ("message/delivery-status", "text/rfc822-headers"):
            continue
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
        if part.get_content_maintype() == "text" and not filename and disposition != "attachment":
            continue  # an alternative body (e.g. a second text part), already in the text
        if ctype == "message/rfc822":
            inner = part.get_payload()
            inner_msg = inner[0] if isinstance(inner, list) and inner else inner
            data = inner_msg.as_bytes(policy=policy.SMTP) if isinstance(inner_msg, Message) else b""
            filename = filename or "message.eml"
        else:
            data = part.get_payload(decode=True) or b""
        if not data:
            continue
        if total + len(data) > limit:
            oversize.append({"filename": filename, "content_type": ctype, "size": len(data)})
            continue
        total += len(data)
        kept.append(Attachment(content_type=ctype, filename=filename, size=len(data), content=data,
                               provider_id=_header(part, "Content-ID")))
    return kept, oversize


def auto_reply_reason(msg: Message, subject: str) -> str | None:
    """Why ``msg`` is an automatic message (never to be answered), or None."""
    auto = (_header(msg, "Auto-Submitted") or "").lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto.split(';')[0].strip()}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        if _header(msg, name) is not None:
            return name
    precedence = (_header(msg, "Precedence") or "").lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if (_header(msg, "X-Auto-Response-Suppress") or "").lower() in ("all", "oof") and _AUTO_SUBJECT.search(subject):
        return "out-of-office"
    if _AUTO_SUBJECT.match(_strip_prefixes(subject)) or _AUTO_SUBJECT.match(subject):
        return "out-of-office subject"
    return None


def _strip_prefixes(subject: str) -> str:
    return _SUBJECT_PREFIX.sub("", subject).strip()


def bounce_info(msg: Message, sender: str, subject: str) -> dict[str, Any] | None:
    """For a delivery failure report: the original Message-ID, status and recipient."""
    is_report = (msg.get_content_type() == "multipart/report"
                 and (msg.get_param("report-type") or "").lower() == "delivery-status")
    from_daemon = bool(_BOUNCE_SENDER.match(sender))
    if not (is_report or from_daemon or _header(msg, "X-Failed-Recipients")):
        return None
    info: dict[str, Any] = {"original_message_id": None, "status": None, "action": None, "recipient": None,
                            "diagnostic": None}
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for block in part.get_payload() if isinstance(part.get_payload(), list) else []:
                for key, field in (("action", "Action"), ("status", "Status"), ("recipient", "Final-Recipient"),
                                   ("diagnostic", "Diagnostic-Code")):
                    value = _header(block, field)
                    if value and not info[key]:
                        info[key] = value.split(";", 1)[-1].strip() if key in ("recipient", "diagnostic") \
                            else value.strip().lower()
        elif ctype == "message/rfc822" and not info["original_message_id"]:
            inner = part.get_payload()
            inner_msg = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner_msg, Message):
                ids = message_ids(_header(inner_msg, "Message-ID"))
                info["original_message_id"] = ids[0] if ids else None
        elif ctype == "text/rfc822-headers" and not info["original_message_id"]:
            data = part.get_payload(decode=True) or b""
            headers = BytesHeaderParser(policy=policy.default).parsebytes(data)
            ids = message_ids(_header(headers, "Message-ID"))
            info["original_message_id"] = ids[0] if ids else None
    if not info["original_message_id"]:
        # Non-standard bounces quote the original headers in the text.
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                found = _BODY_MSGID.findall(_part_text(part))
                if found:
                    info["original_message_id"] = found[-1]
                    break
    if not info["recipient"]:
        info["recipient"] = _header(msg, "X-Failed-Recipients")
    if not info["status"]:
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                match = _STATUS.search(_part_text(part))
                if match:
                    info["status"] = match.group(0)
                    break
    if not is_report and not info["original_message_id"] and not _BOUNCE_SUBJECT.search(subject):
        return None  # a human writing from postmaster@, say
    status = info["status"] or ""
    info["permanent"] = status.startswith("5") or (not status and (info["action"] or "failed") == "failed")
    if info["action"] in ("delayed", "relayed", "delivered", "expanded"):
        info["permanent"] = False
    return info


def _plus_token(msg: Message, mailbox: str) -> str | None:
    local, _, domain = mailbox.lower().partition("@")
    for address in _addresses(msg, "To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To"):
        spec = (address.addr_spec or "").lower()
        a_local, _, a_domain = spec.partition("@")
        if a_domain == domain and a_local.startswith(local + "+"):
            token = a_local[len(local) + 1:]
            if token:
                return token
    return None


def complaint_subject(subject: str | None) -> str:
    """The subject without Re:/Fwd:/TR: prefixes."""
    return _strip_prefixes(subject or "")


def _check_structure(msg: Message) -> None:
    """At most ``MAX_MIME_PARTS`` parts, nested at most ``MAX_MIME_DEPTH`` deep (walked without recursion)."""
    stack: list[tuple[Message, int]] = [(msg, 1)]
    parts = 0
    while stack:
        part, depth = stack.pop()
        parts += 1
        if parts > MAX_MIME_PARTS:
            raise MalformedPayload(f"more than {MAX_MIME_PARTS} MIME parts")
        if depth > MAX_MIME_DEPTH:
            raise MalformedPayload(f"MIME parts nested deeper than {MAX_MIME_DEPTH}")
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))


def parse_email(raw: bytes, *, mailbox: str, received_at: datetime,
                max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
                plus_addressing: bool = False) -> InboundMessage:
    """Parse one message as fetched from the mailbox ``mailbox``; raises ``MalformedPayload``."""
    if not raw or not raw.strip():
        raise MalformedPayload("empty message")
    first = raw.lstrip()[:200].split(b"\n", 1)[0]
    if b":" not in first or first.startswith((b" ", b"\t")):
        raise MalformedPayload("no header section: the data does not start with a header line")
    if raw.count(b"\n--") > 4 * MAX_MIME_PARTS + 100:  # cheap guard before the (slow) parse
        raise MalformedPayload(f"too many MIME boundaries (at most {MAX_MIME_PARTS} parts are read)")
    try:
        msg: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[assignment]
    except Exception as exc:  # noqa: BLE001 - the parser is lenient; anything escaping is malformed data
        raise MalformedPayload(f"unreadable message: {type(exc).__name__}: {exc}") from exc
    _check_structure(msg)
    sender, sender_name = _sender(msg)
    ids = message_ids(_header(msg, "Message-ID"))
    message_id = ids[0] if ids else _stable_id(msg, raw)
    in_reply_to = message_ids(_header(msg, "In-Reply-To"))
    references = message_ids(_header(msg, "References"))
    # Most relevant first: the direct parent, then the thread from newest to oldest.
    chain: list[str] = []
    for ref in in_reply_to + list(reversed(references)):
        if ref not in chain and ref != message_id:
            chain.append(ref)
    subject = (_header(msg, "Subject") or "")[:998]

    plain, html = _body_parts(msg)
    text = _part_text(plain).strip() if plain is not None else ""
    source = "plain"
    if not text and html is not None:
        text, source = html_to_text(_part_text(html)), "html"
    full = text.replace("\r\n", "\n")[:MAX_TEXT]
    body = strip_reply(full) if full else ""

    attachments, oversize = _attachments(msg, (plain, html), max_attachment_bytes)
    auto = auto_reply_reason(msg, subject)
    bounce = bounce_info(msg, sender, subject)
    if bounce is not None:
        attachments = []  # the returned original is ours, not the citizen's
    meta: dict[str, Any] = {"eml": raw, "body_source": source, "quote_stripped": body != full.strip()}
    if auto:
        meta["auto_reply"] = auto
    if bounce is not None:
        meta["bounce"] = bounce
    if oversize:
        meta["oversize"] = oversize
        meta["max_attachment_bytes"] = max_attachment_bytes
    if plus_addressing:
        token = _plus_token(msg, mailbox)
        if token:
            meta["plus_token"] = token
    to = [a.addr_spec.lower() for a in _addresses(msg, "To", "Cc") if a.addr_spec]
    headers = {name.lower(): value for name in ("Date", "Message-ID", "In-Reply-To", "Auto-Submitted",
                                                "Precedence", "Content-Type", "X-Mailer", "User-Agent")
               if (value := _header(msg, name))}
    return InboundMessage(
        channel="email", provider_message_id=_provider_id(message_id), sender=f"mailto:{sender}",
        service_address=mailbox.lower(), text=body, received_at=received_at,
        kind="media" if attachments and not body else "text", attachments=tuple(attachments),
        thread_ref=message_id[:998], references=tuple(chain), subject=subject or None,
        raw={"headers": headers, "to": to[:50], "size": len(raw), "defects": len(msg.defects),
             "attachments_dropped": len(oversize)},
        sender_name=sender_name, meta=meta,
    )
