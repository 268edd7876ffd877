"""Finding a configured place in a message, in any of its spellings.

Names come from the configuration's ``[places]`` (``names``), from ``config/routing/places.toml``
(extra spellings per place id) and from ``[routing.place_spellings]``. A name matches when its
normalised words appear in order; the first word may carry a clitic (Arabic ب ف ل و ك د, with or
without the article, e.g. ``بوهران``, ``فالبيضاء``, ``للرباط``; Darija in Latin letters ``fcasa``,
``bwahran``, ``lrabat``). Long Latin names also match with one typo (two for ten letters or
more), e.g. ``Casablanka``, ``Marakesh``. Spellings listed as ``weak`` (common words that are also
place names, such as ``البيضاء``) count only when no other place is named.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from itertools import compress
from typing import Any, Iterable, Mapping

from conversations.routing.lexicon import ROUTING_DIR
from conversations.routing.normalise import is_arabic, remember, tokenize

PLACES_FILE = ROUTING_DIR / "places.toml"
_AR_PREFIXES = ("و", "ف", "ب", "ل", "ك", "د", "وب", "وف", "ول", "فل", "بل", "لل", "ال", "فال", "بال",
                "وال", "دال", "كال", "من")
_LAT_PREFIXES = ("f", "b", "l", "d", "w", "fi", "bi", "el", "l", "fl", "bl", "wl", "dl", "mn")


@dataclass(frozen=True)
class PlaceHit:
    """A place found in a text: its id, the token span and whether the spelling is weak."""
    place: str
    start: int
    end: int
    weak: bool


def _damerau_within(a: str, b: str, limit: int) -> bool:
    if abs(len(a) - len(b)) > limit:
        return False
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return False
        prev2, prev = prev, cur
    return prev[-1] <= limit


class PlaceMatcher:
    """Matches place spellings in tokens from ``tokenize(text, squeeze=False)`` (see the module docstring)."""

    def __init__(self, spellings: Mapping[str, Iterable[str]], weak: Iterable[str] = (),
                 stopwords: Iterable[str] = ()) -> None:
        weak_keys = {tuple(tokenize(w, squeeze=False)[0]) for w in weak}
        self.by_first: dict[str, list[tuple[tuple[str, ...], str, bool]]] = {}
        self.fuzzy: list[tuple[str, str]] = []
        self.stopwords = frozenset(stopwords)
        for place, names in spellings.items():
            for name in names:
                keys = tuple(tokenize(str(name), squeeze=False)[0])
                if not keys:
                    continue
                entry = (keys, place, keys in weak_keys)
                self.by_first.setdefault(keys[0], []).append(entry)
                if len(keys) == 1 and keys[0].isascii() and len(keys[0]) >= 7:
                    self.fuzzy.append((keys[0], place))
        for entries in self.by_first.values():
            entries.sort(key=lambda e: -len(e[0]))
        self.near: dict[str, set[str]] = {}
        for name, _place in self.fuzzy:
            for variant in (name, *(name[:i] + name[i + 1:] for i in range(len(name)))):
                self.near.setdefault(variant, set()).add(name)
        self.long_names = [name for name, _place in self.fuzzy if len(name) >= 10]
        self._cache: dict[str, tuple[str, ...]] = {}

    def _heads(self, token: str) -> tuple[str, ...]:
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        heads = [token] if token in self.by_first else []
        prefixes = _AR_PREFIXES if is_arabic(token) else _LAT_PREFIXES if token.isascii() else ()
        minimum = 2 if is_arabic(token) else 3
        for p in prefixes:
            if token.startswith(p) and len(token) - len(p) >= minimum and token[len(p):] in self.by_first:
                heads.append(token[len(p):])
        if not heads and token.isascii() and len(token) >= 6 and token not in self.stopwords:
            candidates: set[str] = set()
            for variant in (token, *(token[:i] + token[i + 1:] for i in range(len(token)))):
                candidates.update(self.near.get(variant, ()))
            candidates.update(n for n in self.long_names if abs(len(n) - len(token)) <= 2
                              and (n[0] == token[0] or n[-1] == token[-1]))
            for name in sorted(candidates):
                if _damerau_within(token, name, 2 if len(name) >= 10 else 1):
                    heads.append(name)
        return remember(self._cache, token, tuple(dict.fromkeys(heads)))

    def find_all(self, tokens: list[str]) -> list[PlaceHit]:
        """Every place named in the tokens, in text order (longest spelling at each position)."""
        try:
            heads = list(map(self._cache.__getitem__, tokens))
        except KeyError:
            heads = list(map(self._heads, tokens))
        hits: list[PlaceHit] = []
        end = 0
        for i in compress(range(len(tokens)), heads):
            if i < end:
                continue
            hit: PlaceHit | None = None
            for head in heads[i]:
                for keys, place, weak in self.by_first[head]:
                    if tuple(tokens[i + 1:i + len(keys)]) == keys[1:]:
                        if hit is None or len(keys) > hit.end - hit.start:
                            hit = PlaceHit(place, i, i + len(keys), weak)
                        break
            if hit is not None:
                hits.append(hit)
                end = hit.end
        return hits

    def find(self, tokens: list[str]) -> PlaceHit | None:
        """The place the message is about: the first strong spelling, else the first weak one."""
        hits = self.find_all(tokens)
        for hit in hits:
            if not hit.weak:
                return hit
        return hits[0] if hits else None


def place_spellings(places: Mapping[str, Any], routing: Mapping[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    """All spellings per configured place id (config names + places.toml + routing overrides) and the weak ones."""
    spellings: dict[str, list[str]] = {pid: [str(n) for n in getattr(p, "names", ())] + [pid] for pid, p in places.items()}
    weak: list[str] = []
    data: dict[str, Any] = {}
    if PLACES_FILE.exists():
        with PLACES_FILE.open("rb") as fh:
            data = tomllib.load(fh)
    extra = dict(data.get("spellings", {}))
    for pid, names in dict(routing.get("place_spellings", {})).items():
        extra[pid] = list(extra.get(pid, [])) + list(names)
    for pid, names in extra.items():
        if pid in spellings:
            spellings[pid].extend(str(n) for n in names)
    weak.extend(str(w) for w in data.get("weak", []))
    weak.extend(str(w) for w in routing.get("weak_place_spellings", []))
    return spellings, weak
