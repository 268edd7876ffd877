"""The TOML configuration: administrations directory, taxonomy, places, deadlines, templates.

Defaults ship in ``config/defaults/`` (taxonomy and places from the shared data) and
``config/templates/<lang>.toml``; the file named by ``GATEWAY_CONFIG`` is merged over them
table by table, so an administrator can add a category, a synonym, a branch or a template
without a release.
"""
from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from config.settings import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent
DEFAULTS_DIR = CONFIG_DIR / "defaults"
TEMPLATES_DIR = CONFIG_DIR / "templates"


@dataclass(frozen=True)
class Branch:
    id: str
    place: str
    names: Mapping[str, str]


@dataclass(frozen=True)
class Administration:
    id: str
    names: Mapping[str, str]
    branches: Mapping[str, Branch] = field(default_factory=dict)  # place id -> branch
    email: str | None = None

    def name(self, language: str) -> str:
        return self.names.get(language) or self.names.get("en") or self.id


@dataclass(frozen=True)
class Category:
    id: str
    administration: str
    names: Mapping[str, str]
    description: str = ""

    def name(self, language: str) -> str:
        return self.names.get(language) or self.names.get("en") or self.id


@dataclass(frozen=True)
class Place:
    id: str
    country: str
    names: tuple[str, ...]
    region: str | None = None


@dataclass(frozen=True)
class Deadlines:
    acknowledge_days: int = 15
    answer_days: int = 60
    working_days: bool = False
    holidays: tuple[str, ...] = ()
    # days that are not working days (mon..sun); Algeria's weekend is ("fri", "sat")
    weekend: tuple[str, ...] = ("sat", "sun")
    # overrides keyed by complaint kind or administration id: {"acknowledge_days": .., "answer_days": ..}
    per_kind: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    per_administration: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class GatewayConfig:
    languages: tuple[str, ...]
    default_language: str
    administrations: Mapping[str, Administration]
    categories: Mapping[str, Category]
    places: Mapping[str, Place]
    deadlines: Deadlines
    templates: Mapping[str, Mapping[str, str]]
    followup_window_hours: int = 24
    max_text_length: int = 5000
    routing: Mapping[str, Any] = field(default_factory=dict)
    channels: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)

    def administration_for(self, category: str | None, place: str | None = None) -> str | None:
        """The administration (or its branch for ``place``) in charge of ``category``."""
        if category is None or category not in self.categories:
            return None
        admin = self.administrations.get(self.categories[category].administration)
        if admin is None:
            return self.categories[category].administration
        if place and place in admin.branches:
            return admin.branches[place].id
        return admin.id

    def administration_name(self, admin_id: str | None, language: str) -> str:
        if not admin_id:
            return ""
        national, _, _ = admin_id.partition(".")
        admin = self.administrations.get(national)
        if admin is None:
            return admin_id
        for branch in admin.branches.values():
            if branch.id == admin_id:
                return branch.names.get(language) or branch.names.get("en") or f"{admin.name(language)} ({branch.place})"
        return admin.name(language)

    def channel_options(self, channel: str) -> Mapping[str, Any]:
        return self.channels.get(channel, {})


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path, setting: str) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{setting}: file {path} does not exist; fix the path or unset it") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{setting}: {path} is not valid TOML ({exc}); fix the file") from exc


def _default_tables() -> dict[str, Any]:
    data = _read_toml(DEFAULTS_DIR / "gateway.toml", "default configuration")
    categories = data.setdefault("categories", {})
    with (DEFAULTS_DIR / "categories.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            entry = categories.setdefault(row["id"], {})
            entry.setdefault("administration", row["default_administration"])
            entry.setdefault("description", row["what belongs here"])
    places = data.setdefault("places", {})
    with (DEFAULTS_DIR / "places.tsv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            names = [n.strip() for n in row["names (comma separated spellings seen in messages)"].split(",")]
            entry = places.setdefault(row["id"], {})
            entry.setdefault("country", row["country"])
            entry.setdefault("names", [n for n in names if n])
    templates = data.setdefault("templates", {})
    for path in sorted(TEMPLATES_DIR.glob("*.toml")):
        templates[path.stem] = _deep_merge(_read_toml(path, f"templates/{path.name}"), templates.get(path.stem, {}))
    return data


def _build(data: Mapping[str, Any]) -> GatewayConfig:
    def names_of(table: Mapping[str, Any], where: str) -> dict[str, str]:
        names = table.get("name", {})
        if isinstance(names, str):
            return {"en": names}
        if not isinstance(names, Mapping):
            raise ConfigError(f"GATEWAY_CONFIG: {where}.name must be a string or a table of languages")
        return {str(k): str(v) for k, v in names.items()}

    administrations: dict[str, Administration] = {}
    for admin_id, table in data.get("administrations", {}).items():
        branches = {}
        for place, btable in table.get("branches", {}).items():
            branches[place] = Branch(id=str(btable.get("id", f"{admin_id}.{place}")), place=place,
                                     names=names_of(btable, f"administrations.{admin_id}.branches.{place}"))
        administrations[admin_id] = Administration(admin_id, names_of(table, f"administrations.{admin_id}"),
                                                   branches, table.get("email"))
    categories: dict[str, Category] = {}
    for cat_id, table in data.get("categories", {}).items():
        if table.get("disabled"):
            continue
        admin = table.get("administration")
        if not admin:
            raise ConfigError(f"GATEWAY_CONFIG: categories.{cat_id}.administration is missing; name the "
                              "administration in charge")
        if admin not in administrations:
            raise ConfigError(f"GATEWAY_CONFIG: categories.{cat_id}.administration = {admin!r} is not in "
                              f"[administrations]; add [administrations.{admin}] or fix the id")
        categories[cat_id] = Category(cat_id, admin, names_of(table, f"categories.{cat_id}"),
                                      str(table.get("description", "")))
    places = {pid: Place(pid, str(t.get("country", "")), tuple(t.get("names", ())), t.get("region"))
              for pid, t in data.get("places", {}).items()}
    for admin in administrations.values():
        for place in admin.branches:
            if place not in places:
                raise ConfigError(f"GATEWAY_CONFIG: administrations.{admin.id}.branches.{place}: unknown "
                                  "place; add it under [places] or fix the id")
    dl = data.get("deadlines", {})
    deadlines = Deadlines(
        acknowledge_days=int(dl.get("acknowledge_days", 15)),
        answer_days=int(dl.get("answer_days", 60)),
        working_days=bool(dl.get("working_days", False)),
        holidays=tuple(str(h) for h in dl.get("holidays", ())),
        weekend=tuple(str(d) for d in dl.get("weekend", ("sat", "sun"))),
        per_kind=dict(dl.get("per_kind", {})),
        per_administration=dict(dl.get("per_administration", {})),
    )
    _check_calendar(deadlines)
    languages = tuple(data.get("languages", ("ar", "fr", "en")))
    default_language = str(data.get("default_language", languages[0]))
    templates = {lang: dict(t) for lang, t in data.get("templates", {}).items()}
    for lang in ("ar", "fr", "en"):
        if lang not in templates:
            raise ConfigError(f"templates for {lang!r} are missing; add config/templates/{lang}.toml")
    return GatewayConfig(
        languages=languages,
        default_language=default_language,
        administrations=administrations,
        categories=categories,
        places=places,
        deadlines=deadlines,
        templates=templates,
        followup_window_hours=int(data.get("followup_window_hours", 24)),
        max_text_length=int(data.get("max_text_length", 5000)),
        routing=dict(data.get("routing", {})),
        channels=dict(data.get("channels", {})),
        raw=data,
    )


def _check_calendar(deadlines: Deadlines) -> None:
    from datetime import date

    for entry in deadlines.holidays:
        try:
            for part in entry.split(".."):
                date.fromisoformat(part.strip())
        except ValueError as exc:
            raise ConfigError(f"GATEWAY_CONFIG: deadlines.holidays: {entry!r} is not a date; write YYYY-MM-DD "
                              "or a range YYYY-MM-DD..YYYY-MM-DD") from exc
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    for day in deadlines.weekend:
        if day.strip().lower()[:3] not in days:
            raise ConfigError(f"GATEWAY_CONFIG: deadlines.weekend: {day!r} is not a day; use {', '.join(days)}")


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> GatewayConfig:
    """Defaults, merged with the TOML file at ``path`` (``GATEWAY_CONFIG``) and ``overrides``."""
    data = _default_tables()
    if path is not None:
        data = _deep_merge(data, _read_toml(Path(path), "GATEWAY_CONFIG"))
    if overrides:
        data = _deep_merge(data, overrides)
    return _build(data)
