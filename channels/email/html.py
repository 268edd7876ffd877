"""HTML mail bodies -> clean text, with the standard library's ``html.parser``.

Scripts, styles and the head are dropped; block elements become line breaks; list items get a
dash; text inside ``<blockquote>`` (how Gmail, Apple Mail and Thunderbird quote) is prefixed
with ``> `` so the quote stripper can remove it like a plain-text quote.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript", "svg", "xml"})
_BLOCK = frozenset({"p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
                    "blockquote", "pre", "hr", "section", "article", "header", "footer", "address", "dd", "dt"})
_PARAGRAPH = frozenset({"p", "blockquote", "table", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "pre", "ul", "ol"})
_SPACES = re.compile(r"[ \t\u00a0\u200b\r\f\v]+")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip_depth = 0
        self.quote_depth = 0
        self.pre_depth = 0

    def _break(self, blank: bool = False) -> None:
        line = "".join(self.current)
        if self.pre_depth == 0:
            line = _SPACES.sub(" ", line).strip()
        prefix = "> " * self.quote_depth
        if line or self.pre_depth:
            self.lines.append(prefix + line)
        if blank:
            self.lines.append(prefix.rstrip())
        self.current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if tag == "br" and not "".join(self.current).strip():
            self._break(blank=True)  # <br><br>: a paragraph break
        elif tag in _BLOCK:
            self._break(blank=tag in _PARAGRAPH)
        if tag == "blockquote":
            self.quote_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        elif tag == "li":
            self.current.append("- ")
        elif tag in ("td", "th") and self.current:
            self.current.append(" ")
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self.current.append(f"[{alt}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "hr", "p", "div"):
            self.handle_starttag(tag, attrs)
        elif tag == "img":
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(self.skip_depth - 1, 0)
            return
        if tag in _BLOCK:
            self._break(blank=tag in _PARAGRAPH)
        if tag == "blockquote":
            self.quote_depth = max(self.quote_depth - 1, 0)
        elif tag == "pre":
            self.pre_depth = max(self.pre_depth - 1, 0)

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.pre_depth:
            for i, part in enumerate(data.split("\n")):
                if i:
                    self._break()
                self.current.append(part)
            return
        self.current.append(data.replace("\n", " "))


def html_to_text(html: str) -> str:
    """Readable text from an HTML body: paragraphs kept, at most one blank line in a row."""
    parser = _Text()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; anything left is unreadable markup
        pass
    parser._break()
    out: list[str] = []
    for line in parser.lines:
        if not line.replace(">", "").strip():
            if not out or not out[-1].replace(">", "").strip():
                continue  # no leading blank line, never two in a row
            line = line.replace(" ", "")
        out.append(line.rstrip())
    while out and not out[-1].replace(">", "").strip():
        out.pop()
    return "\n".join(out)
