"""Routing lexicons: loading the data files in ``config/routing/`` and matching them in text.

A lexicon file is TOML. Each top-level table is a category id, ``_triage`` (words that mean "not
a complaint to route"), ``_neutral`` (phrases that only keep their words from counting) or a cue
under ``_cues``; it holds term lists by weight tier (``strong``, ``normal``, ``weak``, ``faint``)
and optionally a ``weights`` table of ``term = number``. A term is a word or a phrase; a word
ending in ``*`` matches any word starting with it, ``#`` matches any number. Terms are
normalised like the text. Arabic words are also matched without their clitics (و ف ب ل ك ال ...),
Darija verb prefixes and common suffixes, so one entry covers ``الما``, ``فالما``, ``والما``; a
file may list ``latin_clitics`` glued to its Latin words (Darija ``flma``, ``lmadrasa``). Long
words also match with one typo. ``rules.toml`` holds filler words and combination rules over cues.
See ``config/routing/README.md``.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from config.settings import ConfigError
from conversations.routing.normalise import MEMO_MAX_ENTRIES, is_arabic, remember, tokenize

ROUTING_DIR = Path(__file__).resolve().parents[2] / "config" / "routing"
LEXICON_DIR = ROUTING_DIR / "lexicon"
_VOWELS = re.compile("[aeiouy]")
_LATIN_REPEAT = re.compile(r"([a-z])\1+")
TIERS: Mapping[str, float] = {"strong": 3.0, "normal": 2.0, "weak": 1.0, "faint": 0.5}
TRIAGE = "_triage"
NEUTRAL = "_neutral"
CUES = "_cues"
NUMBER = "#"

_AR_CONJ = ("و", "ف")
_AR_PREFIXES = ("ال", "بال", "فال", "كال", "دال", "لل", "ل", "ب", "ك", "د", "فل", "بل",
                "كي", "كا", "تي", "كت", "كن", "تا", "غا", "ما", "ماكي", "ماكا", "مات")
_AR_VERBAL = frozenset(("كي", "كا", "تي", "كت", "كن", "تا", "غا", "ما", "ماكي", "ماكا", "مات"))
_AR_SUFFIXES = ("ها", "هم", "هن", "كم", "كن", "نا", "ه", "ي", "ك", "و", "ش", "ات", "ين", "ون",
                "يه", "تي", "تو", "يا", "ليا", "لي", "لو", "لها", "لنا", "هوم", "وش", "هاش", "ناش")
_AR_SUFFIXES_BY_LAST: dict[str, tuple[str, ...]] = {}
for _suffix in _AR_SUFFIXES:
    _AR_SUFFIXES_BY_LAST[_suffix[-1]] = _AR_SUFFIXES_BY_LAST.get(_suffix[-1], ()) + (_suffix,)
_LAT_SUFFIXES = ("s", "na", "hom", "ha", "kom")


FUZZY_MIN_LATIN = 7
FUZZY_MIN_ARABIC = 6


_AR_CONFUSABLE = frozenset(frozenset(pair) for pair in (
    "دذ", "ذز", "ضظ", "ضد", "ظذ", "سص", "تط", "قك", "هح", "يا", "وا", "عا", "ثت", "ثس", "غق", "زج"))


def _fuzzy_min(word: str) -> int:
    return FUZZY_MIN_ARABIC if is_arabic(word) else FUZZY_MIN_LATIN


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (short words only)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _within_one(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance of at most one."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            i = diff[0]
            return not is_arabic(a) or frozenset((a[i], b[i])) in _AR_CONFUSABLE
        return (len(diff) == 2 and diff[1] == diff[0] + 1
                and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    if la < lb:
        a, b = b, a
    return any(a[:i] + a[i + 1:] == b for i in range(len(a)))


def _strip_variants(token: str) -> list[str]:
    """The token and its forms without clitic prefixes (article/preposition forms first)."""
    out = [token]
    if is_arabic(token):
        heads = [token] + [token[len(c):] for c in _AR_CONJ if token.startswith(c) and len(token) - len(c) >= 2]
        verbal: list[str] = []
        for head in heads:
            if head is not token:
                out.append(head)
            for p in _AR_PREFIXES:
                if head.startswith(p) and len(head) - len(p) >= 2:
                    (verbal if p in _AR_VERBAL else out).append(head[len(p):])
        out.extend(verbal)
    return out


# Per-token work shared by the two lexicons of a router, which look up the same new tokens one
# after the other: a short memory is enough.
_FORMS: dict[str, tuple[str, ...]] = {}
_TYPO_VARIANTS: dict[str, tuple[str, ...]] = {}
_SHARED_LIMIT = 2_000


def _forms(token: str) -> tuple[str, ...]:
    """:func:`_strip_variants` of ``token``, remembered a while."""
    forms = _FORMS.get(token)
    return remember(_FORMS, token, tuple(_strip_variants(token)), _SHARED_LIMIT) if forms is None else forms


def _typo_variants(form: str) -> tuple[str, ...]:
    """``form`` and its :func:`_deletions`, remembered a while."""
    variants = _TYPO_VARIANTS.get(form)
    if variants is None:
        variants = remember(_TYPO_VARIANTS, form, (form, *_deletions(form)), _SHARED_LIMIT)
    return variants


def _suffix_variants(form: str) -> list[str]:
    out: list[str] = []
    if is_arabic(form):
        for s in _AR_SUFFIXES_BY_LAST.get(form[-1], ()):
            if form.endswith(s) and len(form) - len(s) >= 2:
                stem = form[: -len(s)]
                out.append(stem)
                if stem.endswith("ت"):
                    out.append(stem[:-1] + "ه")
    elif form.isascii():
        for s in _LAT_SUFFIXES:
            if form.endswith(s) and len(form) - len(s) >= 3:
                out.append(form[: -len(s)])
    return out


def consonant_skeleton(word: str) -> str:
    """A Latin word without vowels and doubled letters: Arabizi spellings vary in their vowels
    (``chefrou``/``chffro``/``chefro``, ``tobis``/``toubis``)."""
    return _LATIN_REPEAT.sub(r"\1", _VOWELS.sub("", word))


def parse_term(term: str) -> tuple[str, ...]:
    """The sequence of match keys for a lexicon term (normalised words, ``stem*``, ``#``)."""
    keys: list[str] = []
    for chunk in term.split():
        if chunk == NUMBER:
            keys.append(NUMBER)
            continue
        star = chunk.endswith("*")
        toks = [_bare(t) for t in tokenize(chunk.rstrip("*"))[0]]
        if not toks:
            continue
        if star:
            toks[-1] += "*"
        keys.extend(toks)
    return tuple(keys)


def _bare(token: str) -> str:
    """An Arabic lexicon word without its article, when what remains is a word of 3+ letters."""
    if token.startswith("ال") and len(token) >= 5 and is_arabic(token):
        return token[2:]
    return token


@dataclass(frozen=True)
class Combo:
    """When all ``cues`` were seen in a message, add ``add`` to the category scores."""
    cues: tuple[str, ...]
    add: Mapping[str, float]
    reason: str


@dataclass(frozen=True)
class Match:
    """One lexicon term found in a text: its token span, the term and its weights."""
    start: int
    end: int
    term: tuple[str, ...]
    weights: Mapping[str, float]


@dataclass
class Lexicon:
    """Loaded lexicon data: phrases (tuples of keys) -> {target: weight}, combination rules,
    filler words and the consonant skeletons of Darija words in Latin letters.

    Targets are category ids, ``_triage`` (pushes towards human triage), ``_neutral`` and
    ``$cue`` names.
    """
    phrases: dict[tuple[str, ...], dict[str, float]] = field(default_factory=dict)
    combos: list[Combo] = field(default_factory=list)
    fillers: set[str] = field(default_factory=set)
    skeletons: dict[str, set[str]] = field(default_factory=dict)

    def add(self, term: str, target: str, weight: float) -> None:
        """Add (or strengthen) ``term`` for ``target``; the highest weight given wins."""
        keys = parse_term(term)
        if not keys or keys == (NUMBER,):
            return
        slot = self.phrases.setdefault(keys, {})
        if target not in slot or abs(weight) > abs(slot[target]):
            slot[target] = weight

    def add_table(self, target: str, table: Mapping[str, Any], where: str, clitics: Sequence[str] = ()) -> None:
        """Add the terms of one lexicon table (tiers and/or a ``weights`` table).

        ``clitics``: prefixes also accepted glued to the first word of each term (Darija in Latin
        letters writes ``lmadrasa``, ``fsbitar``), so ``madrasa`` also matches those.
        """
        for tier, terms in table.items():
            if tier == "weights":
                if not isinstance(terms, Mapping):
                    raise ConfigError(f"{where}.weights must be a table of term = number")
                items = [(str(term), float(weight)) for term, weight in terms.items()]
            elif tier in TIERS:
                if not isinstance(terms, list):
                    raise ConfigError(f"{where}.{tier} must be a list of terms")
                items = [(str(term), TIERS[tier]) for term in terms]
            else:
                raise ConfigError(f"{where}: unknown key {tier!r}; use one of {', '.join(TIERS)} or weights")
            for term, weight in items:
                self.add(term, target, weight)
                if clitics and not target.startswith("$"):
                    keys = parse_term(term)
                    if len(keys) == 1 and not keys[0].endswith("*") and keys[0].isascii():
                        skeleton = consonant_skeleton(keys[0])
                        if len(skeleton) >= 3:
                            self.skeletons.setdefault(skeleton, set()).add(keys[0])
                first = term.split()[0] if term.split() else ""
                if clitics and first.isascii() and first.isalpha() and len(first.rstrip("*")) >= 3:
                    for clitic in clitics:
                        if not first.startswith(clitic):
                            self.add(clitic + term, target, weight)

    def compile(self, cues: bool | None = None) -> "CompiledLexicon":
        """Build the lookup structures used at routing time.

        ``cues=False`` keeps only category/triage terms, ``cues=True`` only cue terms (``$...``), so
        the two can be matched separately without one hiding the other's words.
        """
        return CompiledLexicon(self, cues)


# A phrase as matched: its keys, its weights, the set of its words after the first and the longest
# of those.
_Phrase = tuple[tuple[str, ...], dict[str, float], frozenset[str], str]
_NOTHING: frozenset[str] = frozenset()


def _phrase(term: tuple[str, ...], weights: dict[str, float]) -> _Phrase:
    return term, weights, frozenset(term[1:]), max(term[1:], key=lambda k: (len(k), k))


class _Plan(NamedTuple):
    """What one token brings to matching, worked out once per token."""
    keys: frozenset[str]
    linked: frozenset[str]  # those of the keys that some phrase has after its first word
    active: bool  # some term may start here
    phrases: tuple[_Phrase, ...]  # the phrases the keys start, in the order the matcher tries them
    needs: tuple[frozenset[str], ...]  # per phrase, the words it needs after the first
    rare: frozenset[str]  # per phrase its longest needed word: a text without any of these has none
    word: tuple[tuple[str, ...], dict[str, float]] | None  # the one-word terms, merged as matched


_NO_PLAN = _Plan(_NOTHING, _NOTHING, False, (), (), _NOTHING, None)
_LINKED = attrgetter("linked")
_ACTIVE = attrgetter("active")


class CompiledLexicon:
    """Lookup tables over a :class:`Lexicon`; :meth:`match` finds terms, longest first."""

    def __init__(self, lexicon: Lexicon, cues: bool | None = None) -> None:
        self.combos = list(lexicon.combos)
        self.fillers = frozenset(lexicon.fillers)
        self.exact: set[str] = set()
        self.stems: set[str] = set()
        self.by_first: dict[str, list[tuple[tuple[str, ...], dict[str, float]]]] = {}
        for keys, all_weights in lexicon.phrases.items():
            weights = {t: w for t, w in all_weights.items() if cues is None or t.startswith("$") == cues}
            if not weights:
                continue
            for key in keys:
                if key == NUMBER:
                    continue
                (self.stems if key.endswith("*") else self.exact).add(key.rstrip("*"))
            self.by_first.setdefault(keys[0], []).append((keys, weights))
        for entries in self.by_first.values():
            entries.sort(key=lambda e: -len(e[0]))
        self._phrases: dict[str, tuple[_Phrase, ...]] = {}
        self._words: dict[str, tuple[tuple[str, ...], dict[str, float]]] = {}
        for first, entries in self.by_first.items():
            phrases = tuple(_phrase(term, weights) for term, weights in entries if len(term) > 1)
            if phrases:
                self._phrases[first] = phrases
            if len(entries[-1][0]) == 1:
                self._words[first] = entries[-1]
        self._linked = frozenset(key for phrases in self._phrases.values() for p in phrases for key in p[2])
        self.stem_lengths = sorted({len(s) for s in self.stems})
        # Per opening (as long as the shortest stem), the lengths of the stems that open so: a word
        # is only tried against the stems it could start with.
        self._stem_head = self.stem_lengths[0] if self.stem_lengths else 0
        lengths_by_head: dict[str, set[int]] = {}
        for stem in self.stems:
            lengths_by_head.setdefault(stem[:self._stem_head], set()).add(len(stem))
        self._stem_lengths = {head: tuple(sorted(lengths)) for head, lengths in lengths_by_head.items()}
        self.skeletons = {sk: frozenset(k for k in keys if k in self.exact) for sk, keys in lexicon.skeletons.items()}
        self.fuzzy: dict[str, set[str]] = {}
        for word in self.exact | self.stems:
            if len(word) >= _fuzzy_min(word) and not word.isdigit():
                key = word + "*" if word in self.stems and word not in self.exact else word
                for variant in (word, *_deletions(word)):
                    self.fuzzy.setdefault(variant, set()).add(key)
        self._cache: dict[str, _Plan] = {}
        self._skeleton_cache: dict[str, _Plan] = {}
        # Tokens with the same keys share one plan: every number is {NUMBER}, and most new words
        # (names, typos) match nothing or one word; a plan per token cost about 1 KB each.
        self._plans: dict[frozenset[str], _Plan] = {}

    def keys_for(self, token: str) -> frozenset[str]:
        """Every lexicon key the token satisfies (exact, stem or number), clitics considered."""
        plan = self._cache.get(token)
        return (plan or self._lookup(token)).keys

    def _lookup(self, token: str) -> _Plan:
        plan = self._cache.get(token)
        if plan is None:
            plan = remember(self._cache, token, self._plan(self._keys(token)))
        return plan

    def _keys(self, token: str) -> frozenset[str]:
        found: set[str] = set()
        if token.isdigit():
            found.add(NUMBER)
        exact, stems = self.exact, self.stems
        forms = _forms(token)
        for form in forms:
            whole = form in exact
            if whole:
                found.add(form)
            n = len(form)
            for length in self._stem_lengths.get(form[:self._stem_head], ()):
                if length > n:
                    break
                if form[:length] in stems and (length >= 4 or n - length <= 3 or not is_arabic(form)):
                    found.add(form[:length] + "*")
            if not whole:
                for variant in _suffix_variants(form):
                    if variant in exact:
                        found.add(variant)
        if not found:
            for form in forms:
                if len(form) >= _fuzzy_min(form):
                    found.update(self._near(form))
        return frozenset(found)

    def _plan(self, keys: frozenset[str]) -> _Plan:
        if not keys:
            return _NO_PLAN
        plan = self._plans.get(keys)
        if plan is None:
            plan = self._plans[keys] = self._new_plan(keys)
            if len(self._plans) > MEMO_MAX_ENTRIES:
                self._plans.clear()
        return plan

    def _new_plan(self, keys: frozenset[str]) -> _Plan:
        # Plans are kept for many tokens: they share what they can, to stay small.
        # In a fixed order (the most specific key first), not the set's: the first single word
        # names the match, and its name counts repeats, so routing never depends on the hash seed.
        ordered = sorted(keys, key=lambda k: (-len(k), k))
        phrases = tuple(p for key in ordered for p in self._phrases.get(key, ()))
        singles = [self._words[key] for key in ordered if key in self._words]
        word = singles[0] if singles else None
        if len(singles) > 1:
            word = (singles[0][0], dict(singles[0][1]))
            for _term, weights in singles[1:]:
                _merge(word[1], weights)
        linked = keys & self._linked if not keys.isdisjoint(self._linked) else _NOTHING
        rare = frozenset(p[3] for p in phrases) if phrases else _NOTHING
        return _Plan(keys, linked, bool(phrases or word), phrases, tuple(p[2] for p in phrases), rare, word)

    def _near(self, form: str) -> set[str]:
        """Lexicon words one typo away from ``form`` (a letter missing, extra, wrong or swapped)."""
        out: set[str] = set()
        for variant in _typo_variants(form):
            for key in self.fuzzy.get(variant, ()):
                word = key.rstrip("*")
                if key.endswith("*") and len(form) > len(word):
                    candidate = form[: len(word) + 1]
                    if _within_one(candidate, word) or _within_one(form[: len(word)], word):
                        out.add(key)
                elif word[0] == form[0] and _within_one(form, word):
                    out.add(key)
        return out

    def skeleton_keys(self, token: str) -> frozenset[str]:
        """Arabizi lexicon words with the same consonants as ``token`` (for Darija in Latin letters)."""
        return self._skeleton_plan(token).keys

    def _skeleton_plan(self, token: str) -> _Plan:
        plan = self._skeleton_cache.get(token)
        if plan is None:
            keys: frozenset[str] = frozenset()
            if token.isascii() and token.isalpha() and len(token) >= 4:
                candidates = self.skeletons.get(consonant_skeleton(token), frozenset())
                scored = [(_distance(token, c), c) for c in candidates]
                best = min((d for d, _ in scored), default=9)
                if best <= 2:
                    keys = frozenset(c for d, c in scored if d == best)
            plan = remember(self._skeleton_cache, token, self._plan(keys))
        return plan

    def match(self, tokens: list[str], max_gap: int = 1, max_fillers: int = 3,
              arabizi: bool = False) -> list[Match]:
        """Greedy left-to-right longest matches.

        Between two words of a phrase, up to ``max_fillers`` filler words (articles, "of",
        ديال, تاع ...) and ``max_gap`` other words may stand. When several terms cover the same
        longest span, their weights are merged (the highest per target). A match is given up for
        one starting at the next word when that one reaches further and is longer, or as long
        while this one starts with a filler (``"la taxe"`` yields to ``"taxe foncière"``). With ``arabizi``, a Latin word that matches
        nothing is looked up by its consonants among the Darija words (``chefrou`` ~ ``chffro``).
        """
        try:
            plans = list(map(self._cache.__getitem__, tokens))
        except KeyError:
            plans = list(map(self._lookup, tokens))
        if arabizi:
            plans = [p if p.keys else self._skeleton_plan(t) for p, t in zip(plans, tokens)]
        # Only the words that phrases need further on: enough to rule phrases out.
        present = frozenset().union(*map(_LINKED, plans))
        n = len(tokens)
        out: list[Match] = []
        ahead: Match | None = None
        ahead_at = -1
        end = 0
        for i in compress(range(n), map(_ACTIVE, plans)):
            if i < end:
                continue
            _keys, _linked, _active, phrases, needs, rare, word = plans[i]
            if ahead_at == i:
                here = ahead
            elif phrases and not present.isdisjoint(rare) and any(map(present.issuperset, needs)):
                here = self._best(tokens, plans, i, present, max_gap, max_fillers)
            else:
                here = Match(i, i + 1, word[0], dict(word[1])) if word else None
            if here is None:
                continue
            if len(here.term) > 1:
                ahead_at = i + 1
                ahead = self._best(tokens, plans, ahead_at, present, max_gap, max_fillers) if ahead_at < n else None
                # The next active token is then i + 1, where ``ahead`` was found.
                if ahead is not None and ahead.end > here.end and (
                        len(ahead.term) > len(here.term)
                        or (len(ahead.term) == len(here.term) and tokens[i] in self.fillers)):
                    continue
            out.append(here)
            end = here.end
        return out

    def _best(self, tokens: list[str], plans: list[_Plan], i: int, present: frozenset[str], max_gap: int,
              max_fillers: int) -> Match | None:
        """The longest term starting at token ``i``; of equally long ones, those ending first, merged."""
        _keys, _linked, _active, phrases, needs, _rare, word = plans[i]
        fillers = self.fillers
        best_term: tuple[str, ...] = ()
        best_end = 0
        merged: dict[str, float] = {}
        n = len(tokens)
        # Most phrases are ruled out by a word missing from the whole text.
        for term, weights, _needs, _rare in compress(phrases, map(present.issuperset, needs)):
            if len(term) < len(best_term):
                continue
            end = i + 1
            for prev, key in zip(term, term[1:]):
                # A gap (a word that is no filler) may only stand next to a word of three letters or more.
                gap_ok = max(len(key), len(prev)) >= 3
                gaps = fills = 0
                j = end
                end = 0
                while j < n:
                    if key in plans[j].keys:
                        end = j + 1
                        break
                    if fills < max_fillers and tokens[j] in fillers:
                        fills += 1
                    elif gap_ok and gaps < max_gap:
                        gaps += 1
                    else:
                        break
                    j += 1
                if not end:
                    break
            if not end:
                continue
            if len(term) > len(best_term) or end < best_end:
                best_term, best_end, merged = term, end, dict(weights)
            elif end == best_end:
                _merge(merged, weights)
                # The phrases come in set order: of equal terms the smallest names the match, so
                # the result (its phrase bonus counts the term's words) never depends on the hash seed.
                best_term = min(best_term, term)
        if best_term:
            return Match(i, best_end, best_term, merged)
        # A phrase always beats a word, so the words' merged weights could be prepared in advance.
        return Match(i, i + 1, word[0], dict(word[1])) if word else None


def _merge(merged: dict[str, float], weights: Mapping[str, float]) -> None:
    """Keep, per target, the weight of largest magnitude (the first one on a tie)."""
    for target, weight in weights.items():
        if abs(weight) > abs(merged.get(target, 0.0)):
            merged[target] = weight


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"routing lexicon {path}: not valid TOML ({exc}); fix the file") from exc


def lexicon_files(extra_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """The lexicon files to load: ``config/routing/lexicon/*.toml`` then each extra directory/file."""
    files = sorted(LEXICON_DIR.glob("*.toml"))
    for extra in extra_dirs:
        path = Path(extra)
        if path.is_dir():
            files.extend(sorted(path.glob("*.toml")))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"routing.lexicons: {path} does not exist; fix the path or remove it")
    return files


def load_lexicon(categories: Mapping[str, Any], routing: Mapping[str, Any]) -> Lexicon:
    """Load the shipped lexicons, extra lexicon files and the ``[routing]`` synonyms.

    Only tables naming a configured category (or ``_triage``/``_cues``) are used, so disabling a
    category in the configuration also silences its lexicon. Each configured category also gets
    its names (all languages) as terms and, when no lexicon file has a table for it, the
    comma-separated items of its description as weak phrases, so a category added in
    configuration routes before anyone writes a lexicon.
    """
    lex = Lexicon()
    rules_path = ROUTING_DIR / "rules.toml"
    rules = _read(rules_path) if rules_path.exists() else {}
    for word in list(rules.get("fillers", {}).get("words", [])) + list(routing.get("fillers", [])):
        lex.fillers.update(tokenize(str(word))[0])
    for cat_id, cat in categories.items():
        for name in getattr(cat, "names", {}).values():
            lex.add(str(name), cat_id, TIERS["normal"])
    with_tables: set[str] = set()
    extra = routing.get("lexicons", ())
    if isinstance(extra, (str, Path)):
        extra = [extra]
    for path in lexicon_files(extra):
        data = _read(path)
        clitics = [str(c) for c in data.pop("latin_clitics", [])]
        for name, table in data.items():
            where = f"{path.name}: [{name}]"
            if not isinstance(table, Mapping):
                raise ConfigError(f"{where} must be a table")
            if name == CUES:
                for cue, cue_table in table.items():
                    lex.add_table("$" + cue, cue_table, f"{where}.{cue}")
            elif name in (TRIAGE, NEUTRAL) or name in categories:
                lex.add_table(name, table, where, clitics)
                with_tables.add(name)
    for cat_id, cat in categories.items():
        if cat_id not in with_tables:
            for item in str(getattr(cat, "description", "")).split(","):
                if item.strip():
                    lex.add(item.strip(), cat_id, TIERS["weak"])
    synonyms = routing.get("synonyms", {})
    if not isinstance(synonyms, Mapping):
        raise ConfigError("routing.synonyms must be a table: category = [terms] or [routing.synonyms.<category>]")
    for cat_id, terms in synonyms.items():
        if cat_id not in categories and cat_id != TRIAGE:
            raise ConfigError(f"routing.synonyms.{cat_id}: unknown category; add [categories.{cat_id}] or fix the id")
        if isinstance(terms, str):
            terms = [terms]
        if isinstance(terms, list):
            for term in terms:
                lex.add(str(term), cat_id, TIERS["strong"])
        elif isinstance(terms, Mapping):
            lex.add_table(cat_id, terms, f"routing.synonyms.{cat_id}")
        else:
            raise ConfigError(f"routing.synonyms.{cat_id} must be a list of terms or a table of tiers")
    rule_tables = list(rules.get("combo", []))
    rule_tables += list(routing.get("combos", []))
    for rule in rule_tables:
        add = {k: float(v) for k, v in dict(rule.get("add", {})).items() if k in categories or k == TRIAGE}
        cues = tuple("$" + str(c).lstrip("$") for c in rule.get("all", ()))
        if cues and add:
            lex.combos.append(Combo(cues, add, str(rule.get("reason", " + ".join(c[1:] for c in cues)))))
    return lex
