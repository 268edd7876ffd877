"""Options of the phone line (``[channels.ivr]`` in ``GATEWAY_CONFIG``), validated at start-up."""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from config.loader import GatewayConfig
from config.settings import ConfigError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS = {day: ("08:30-16:30",) for day in WEEKDAYS[:5]}
# Text-to-speech per language: (locale, voice). A language without one (Tamazight by default)
# plays configured audio, or is spoken in the default language.
DEFAULT_VOICES = {"ar": ("ar-XA", "Google.ar-XA-Standard-A"), "fr": ("fr-FR", "Google.fr-FR-Standard-A"),
                  "en": ("en-US", "Google.en-US-Standard-C")}
MAX_CATEGORIES = 7  # digits 1..7, "other" right after, 9 repeats
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class Voice:
    locale: str
    name: str | None = None


@dataclass(frozen=True)
class IvrOptions:
    languages: tuple[str, ...] = ("ar", "fr", "tzm", "en")
    categories: tuple[str, ...] = ("water", "electricity", "roads", "waste", "street_lighting")
    max_recording_seconds: int = 120
    max_tries: int = 3
    gather_timeout: int = 6
    reference_timeout: int = 15
    remember_language: bool = True
    agent_queue: str = "hotline"
    agent_number: str | None = None
    dial_timeout: int = 20
    max_queue_wait_seconds: int = 300
    hold_music_url: str | None = None
    timezone: str = "Africa/Casablanca"
    hours: Mapping[int, tuple[tuple[time, time], ...]] = field(default_factory=dict)
    closed_dates: frozenset[str] = frozenset()
    voices: Mapping[str, Voice] = field(default_factory=dict)
    audio: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    transcribe: bool = True
    transcribe_languages: frozenset[str] | None = frozenset({"en"})

    def is_open(self, now: datetime) -> bool:
        """Whether agents answer at ``now`` (opening hours in the configured time zone)."""
        local = now.astimezone(ZoneInfo(self.timezone))
        if local.date().isoformat() in self.closed_dates:
            return False
        return any(start <= local.time() < end for start, end in self.hours.get(local.weekday(), ()))

    def transcribes(self, language: str) -> bool:
        return self.transcribe and (self.transcribe_languages is None or language in self.transcribe_languages)


def _positive(options: Mapping[str, Any], name: str, default: int) -> int:
    value = options.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.{name} must be a positive whole number")
    return value


def _hours(table: Any) -> dict[int, tuple[tuple[time, time], ...]]:
    if not isinstance(table, Mapping):
        raise ConfigError('GATEWAY_CONFIG: channels.ivr.hours must be a table like mon = ["08:30-16:30"]')
    hours: dict[int, tuple[tuple[time, time], ...]] = {}
    for day, ranges in table.items():
        if day not in WEEKDAYS:
            raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.hours.{day}: use one of {', '.join(WEEKDAYS)}")
        if isinstance(ranges, str):
            ranges = [ranges]
        parsed = []
        for item in ranges:
            match = _RANGE.match(str(item).strip())
            try:
                if not match:
                    raise ValueError(item)
                h1, m1, h2, m2 = (int(g) for g in match.groups())
                start = time(h1, m1)
                end = time(23, 59, 59, 999999) if (h2, m2) == (24, 0) else time(h2, m2)
            except ValueError:
                raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.hours.{day}: {item!r} is not a range like "
                                  '"08:30-16:30"') from None
            if end <= start:
                raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.hours.{day}: {item!r} ends before it starts")
            parsed.append((start, end))
        hours[WEEKDAYS.index(day)] = tuple(parsed)
    return hours


def ivr_options(config: GatewayConfig) -> IvrOptions:
    """``[channels.ivr]`` validated; raises ``ConfigError`` naming the setting and the fix."""
    raw = config.channel_options("ivr")
    languages = tuple(str(x) for x in raw.get("languages", IvrOptions.languages))
    if not languages or len(languages) > 8:
        raise ConfigError("GATEWAY_CONFIG: channels.ivr.languages must list 1 to 8 languages")
    for lang in languages:
        if lang not in config.templates:
            raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.languages: no templates for {lang!r}; add "
                              f"config/templates/{lang}.toml or remove it")
    categories = tuple(str(x) for x in raw.get("categories", IvrOptions.categories))
    if not categories or len(categories) > MAX_CATEGORIES:
        raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.categories must list 1 to {MAX_CATEGORIES} categories")
    for cat in categories:
        if cat not in config.categories:
            raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.categories: unknown category {cat!r}")
    tz = str(raw.get("timezone", IvrOptions.timezone))
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.timezone: unknown time zone {tz!r}; use e.g. "
                          "Africa/Casablanca or Africa/Algiers") from None
    number = raw.get("agent_number") or None
    if number is not None:
        try:
            parsed = phonenumbers.parse(str(number), None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not phonenumbers.is_possible_number(parsed):
            raise ConfigError("GATEWAY_CONFIG: channels.ivr.agent_number must be an E.164 number like "
                              "+212522000001 (or empty to use the agent queue)")
        number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    voices = {lang: Voice(*pair) for lang, pair in DEFAULT_VOICES.items()}
    for lang, table in raw.get("voices", {}).items():
        if not table:
            voices.pop(lang, None)  # voices.tzm = {} : no text-to-speech for this language
            continue
        if not isinstance(table, Mapping) or not table.get("language"):
            raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.voices.{lang} needs language = \"xx-XX\" "
                              "(and optionally voice = \"...\")")
        voices[lang] = Voice(str(table["language"]), str(table["voice"]) if table.get("voice") else None)
    audio: dict[str, dict[str, str]] = {}
    for lang, table in raw.get("audio", {}).items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.audio.{lang} must be a table of prompt = URL")
        audio[lang] = {}
        for key, url in _flatten(table).items():
            if not re.match(r"^https?://", str(url)):
                raise ConfigError(f"GATEWAY_CONFIG: channels.ivr.audio.{lang}.{key} must be an http(s) URL")
            audio[lang][key] = str(url)
    hold = raw.get("hold_music_url") or None
    transcribe_languages = raw.get("transcribe_languages", ["en"])
    return IvrOptions(
        languages=languages, categories=categories,
        max_recording_seconds=_positive(raw, "max_recording_seconds", IvrOptions.max_recording_seconds),
        max_tries=_positive(raw, "max_tries", IvrOptions.max_tries),
        gather_timeout=_positive(raw, "gather_timeout", IvrOptions.gather_timeout),
        reference_timeout=_positive(raw, "reference_timeout", IvrOptions.reference_timeout),
        remember_language=bool(raw.get("remember_language", True)),
        agent_queue=str(raw.get("agent_queue", IvrOptions.agent_queue)), agent_number=number,
        dial_timeout=_positive(raw, "dial_timeout", IvrOptions.dial_timeout),
        max_queue_wait_seconds=_positive(raw, "max_queue_wait_seconds", IvrOptions.max_queue_wait_seconds),
        hold_music_url=str(hold) if hold else None, timezone=tz,
        hours=_hours(raw.get("hours", DEFAULT_HOURS)),
        closed_dates=frozenset(str(d) for d in (*config.deadlines.holidays, *raw.get("closed_dates", ()))),
        voices=voices, audio=audio, transcribe=bool(raw.get("transcribe", True)),
        transcribe_languages=frozenset(map(str, transcribe_languages)) if transcribe_languages else None,
    )


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
