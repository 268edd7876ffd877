"""Message templates per language, with fallback to the default language, then English."""
from __future__ import annotations

import string
from typing import Any

from config.loader import GatewayConfig


class _Lenient(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


class Templates:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config

    def language(self, language: str | None) -> str:
        if language and language in self.config.templates:
            return language
        return self.config.default_language

    def _lookup(self, language: str, key: str) -> str | None:
        node: Any = self.config.templates.get(language, {})
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, str) else None

    def get(self, language: str | None, key: str) -> str:
        for lang in (language, self.config.default_language, "en"):
            if lang:
                found = self._lookup(lang, key)
                if found is not None:
                    return found
        raise KeyError(f"no template {key!r} in any language")

    def render(self, language: str | None, key: str, **values: Any) -> str:
        """Render ``key``; unknown placeholders render empty, and whitespace is tidied."""
        text = string.Formatter().vformat(self.get(language, key), (), _Lenient(values))
        return " ".join(text.split())
