"""Console interface strings (``locales/<lang>.toml``) and canned responses per language."""
from __future__ import annotations

import functools
import string
import tomllib
from pathlib import Path
from typing import Any, Mapping

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGES = ("ar", "fr", "en")
RTL = frozenset({"ar"})
DEFAULT = "fr"


@functools.cache
def strings(lang: str) -> dict[str, Any]:
    with (LOCALES_DIR / f"{lang}.toml").open("rb") as fh:
        return tomllib.load(fh)


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


class Translator:
    """``t("key")`` or ``t("status_names.new")``, falling back to English, then to the key."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT

    def _get(self, lang: str, key: str) -> str | None:
        node: Any = strings(lang)
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, str) else None

    def __call__(self, key: str, **values: Any) -> str:
        text = self._get(self.lang, key) or self._get("en", key) or key.rsplit(".", 1)[-1]
        return string.Formatter().vformat(text, (), _Blank(values)) if values else text

    @property
    def dir(self) -> str:
        return "rtl" if self.lang in RTL else "ltr"


def canned(lang: str, config_raw: Mapping[str, Any]) -> dict[str, str]:
    """Canned responses: the defaults of ``locales/<lang>.toml`` merged with ``[console.canned.<lang>]``."""
    out = dict(strings(lang if lang in LANGUAGES else DEFAULT).get("canned_responses", {}))
    console = config_raw.get("console", {}) if isinstance(config_raw, Mapping) else {}
    extra = console.get("canned", {}).get(lang, {}) if isinstance(console, Mapping) else {}
    out.update({str(k): str(v) for k, v in extra.items()})
    return out
