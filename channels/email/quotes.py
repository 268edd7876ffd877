"""Strip the quoted history and the signature of a reply, so what is stored is what was written.

Handles the attribution lines and header blocks of Gmail, Outlook (desktop and web), Apple Mail
and Thunderbird in Arabic, French and English, ``>`` quoting, the ``-- `` signature delimiter and
the usual "sent from my phone" lines. Pure functions on text.
"""
from __future__ import annotations

import re

# A line that opens the quoted original, whatever follows it.
_SEPARATORS = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:original message|message d'origine|message original|الرسالة الأصلية|الرسالة الاصلية)\s*-{2,}"
    r"|_{20,}"
    r"|-{2,}\s*(?:reply above this line|répondre au-dessus de cette ligne)\s*-{2,}"
    r")\s*$",
    re.IGNORECASE,
)
# "On <date>, <name> wrote:" and its translations; may be wrapped over two or three lines.
_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    r"(?:on|le|el|am|il)\b.{0,400}?\b(?:wrote|a écrit|a ecrit|escribió|schrieb|ha scritto)\s*:"
    r"|(?:في|بتاريخ|يوم)\s.{0,400}?كتب.{0,200}?:"
    r"|.{0,400}?\bكتب\s*:"
    r")\s*$",
    re.IGNORECASE | re.DOTALL,
)
# Outlook's header block: "From:/De :/من:" then, within a few lines, "Sent:/Envoyé :/Date:/أرسل:".
_FROM = re.compile(r"^\s*\**\s*(?:from|de|von|من|المرسل)\s*\**\s*:\s*\S", re.IGNORECASE)
_SENT = re.compile(r"^\s*\**\s*(?:sent|date|envoyé|envoye|gesendet|أرسل|أرسلت|تم الإرسال|التاريخ|بتاريخ)\s*\**\s*:",
                   re.IGNORECASE)
_SIGNATURE_DELIMITER = re.compile(r"^--\s*$")
_MOBILE = re.compile(
    r"^\s*(?:sent from my \w+|sent from (?:outlook|mail) for \w+|get outlook for \w+|"
    r"envoyé (?:de|depuis) mon \w+|envoyé à partir de \w+|obtenir outlook pour \w+|"
    r"téléchargez outlook pour \w+|"
    r"أرسلت من (?:جهاز )?\S+|مرسل من \S+|تم الإرسال من \S+|"
    r"sent from yahoo mail.*|envoyé de yahoo mail.*)\W*(?:\S+)?\s*$",
    re.IGNORECASE,
)


def _quote_start(lines: list[str]) -> int | None:
    """The index of the first line of the quoted original, if any."""
    for i, line in enumerate(lines):
        if _SEPARATORS.match(line):
            return i
        if _FROM.match(line) and any(_SENT.match(nxt) for nxt in lines[i + 1:i + 5]):
            return i
        for span in (1, 2, 3):
            chunk = " ".join(part.strip() for part in lines[i:i + span])
            if not chunk or len(chunk) > 600:
                break
            if _ATTRIBUTION.match(chunk) and (span == 1 or not lines[i + span - 1].strip().startswith(">")):
                following = lines[i + span:i + span + 3]
                # An attribution is only trusted when a quote or the end of the mail follows it.
                if not any(nxt.strip() for nxt in following) or any(
                        nxt.lstrip().startswith(">") for nxt in following):
                    return i
                break
    return None


def _strip_signature(lines: list[str]) -> list[str]:
    for i, line in enumerate(lines):
        if _SIGNATURE_DELIMITER.match(line) and i > 0:
            return lines[:i]
    # Mobile footers only count near the end.
    tail_start = max(len(lines) - 4, 0)
    for i in range(len(lines) - 1, tail_start - 1, -1):
        if _MOBILE.match(lines[i]):
            return lines[:i]
    return lines


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def strip_reply(text: str) -> str:
    """``text`` without the quoted history and the signature; the original if nothing is left."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    start = _quote_start(lines)
    if start is not None:
        lines = lines[:start]
    lines = [line for line in lines if not line.lstrip().startswith(">")]
    lines = _trim(_strip_signature(_trim(lines)))
    result = "\n".join(line.rstrip() for line in lines).strip()
    if not result:
        return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">")).strip() \
            or text.strip()
    return re.sub(r"\n{3,}", "\n\n", result)
