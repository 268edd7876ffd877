"""The content router: text (+ channel, + optional category hint) -> category, administration, place.

Scoring: lexicon terms found in the normalised text add their weight to their categories (each
distinct term once, a little more when repeated, multi-word phrases a little more); cues found in
a separate pass adjust them: words right after a locative ("near", قرب, devant) or a
self-description ("je suis", أنا) weigh less, words near a problem word (مقطوع, en panne,
broken) more, words in an e-mail subject line double and words in parentheses half. Per
category the weights are summed from the largest down with a decay, so many incidental mentions
do not beat one clear statement. Combination rules over cues add more (an official + "asked me
for" + an amount -> integrity). ``_triage`` terms (thanks, "it is fixed", questions about the
service) count against every category unless negated. The confidence grows with the winning
score and shrinks with competition::

    confidence = (1 - exp(-(top / scale) ** 2)) * top ** p / (top ** p + second ** p + triage ** p)

so one weak word never routes, one clear word does when nothing competes, and a tie does not.
Below ``[routing] threshold`` the message goes to human triage (category ``None``).
"""
from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from itertools import compress, filterfalse, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from config.loader import GatewayConfig
from config.settings import ConfigError
from conversations.routing.lexicon import NEUTRAL, TRIAGE, CompiledLexicon, Lexicon, load_lexicon
from conversations.routing.normalise import (is_arabic, is_latin, normalise_word, split_words, tokenize,
                                             tokenize_words)
from conversations.routing.places import PlaceMatcher, place_spellings

LOCATIVE, SELF, ATTACHED, PROBLEM, NEGATION = "$locative", "$self", "$attached", "$problem", "$negation"
NEGATABLE = frozenset({"$resolved", "$thanks"})
_NOT_NEGATED = frozenset({"march", "mach", "match", "manch"})
_NEGATION_START = ("م", "m")
# What is_arabic tests, for a whole list of tokens at once.
_ARABIC_LETTERS = frozenset(map(chr, range(0x0621, 0x064B)))
_FIRST_LETTER = itemgetter(slice(0, 1))
_ASIDE = re.compile(r"\(([^()]{0,400})\)")
_SUBJECT = re.compile(r"^\s*(?:objet|sujet|subject|re|fwd?|tr|الموضوع|موضوع)\s*[:：]", re.IGNORECASE)



def _word_set(words: str) -> frozenset[str]:
    # Only Latin tokens, so that counting a text's tokens in these sets counts its Latin words.
    return frozenset(t for w in words.split() for t in normalise_word(w) if is_latin(t))


_FR = _word_set("le la les de des du et est je j pour pas une un dans depuis bonjour merci nous vous il elle on "
                "mon ma mes notre nos au aux sur avec ce cette qui que ne plus tres toujours sans votre madame "
                "monsieur svp bonsoir objet suite")
_EN = _word_set("the and is of to my our have has since please in for no not we it this that was are been "
                "with at on by hello dear sir madam there they you your an be will would all")
_DARIJA = _word_set("dyal dial dyali dyalna taa ta w f mn men ala ma bghit bgha kayn kayna kaynch wach rah rahi "
                    "rani hna had hadi ghir chi bzaf bezaf l ana andi andna lina liya lia salam slm khouya khoya "
                    "akhi wa ya walo walou kolchi kol galo galou qalo dar derb zanqa zenqa hta hata daba druk "
                    "drok kifach kifah chkoun chno achno fin win lyoum lbareh lbarh afak afakom aafak iyam "
                    "simana chhar chhor ga gaa mazal mazel nta nti homa huma yak 3la m3a 3ndi 3afak 7na rahou raha rahom "
                    "makach kayen wesh bezzaf ta3na ta3i nta3 kima bach kifech drouk ya3tik")


def _tokenize_with_asides(text: str, words: list[str]) -> tuple[list[str], list[str], list[bool]]:
    """Tokens and surfaces of ``text`` (split into ``words``), plus whether each token stands inside
    parentheses (an aside)."""
    if "(" not in text:
        tokens, surfaces = tokenize_words(words)
        return tokens, surfaces, [False] * len(tokens)
    tokens, surfaces, aside = [], [], []
    for i, part in enumerate(_ASIDE.split(text)):
        t, s = tokenize(part)
        tokens.extend(t)
        surfaces.extend(s)
        aside.extend([i % 2 == 1] * len(t))
    return tokens, surfaces, aside


def _mark(flags: list[bool], start: int, stop: int) -> None:
    """Set ``flags[start:stop]`` (an empty range sets nothing)."""
    if stop > start:
        flags[start:stop] = [True] * (stop - start)


def _negated_token(token: str) -> bool:
    """Darija negation written in one word: ما...ش (``مارجعش``) or ma...ch (``marjach``)."""
    if len(token) < 4 or not token.startswith(_NEGATION_START):
        return False
    if is_arabic(token):
        return token.startswith("ما") and token.endswith("ش")
    return token.startswith("ma") and token.endswith(("ch", "sh")) and token not in _NOT_NEGATED


@dataclass(frozen=True)
class RoutingResult:
    """Where a message goes. ``category`` None means human triage."""
    category: str | None
    administration: str | None
    place: str | None
    confidence: float
    reasons: tuple[str, ...]
    language: str | None


def _function_words(tokens: list[str]) -> tuple[int, int, int]:
    """How many tokens are Darija, French and English function words (all Latin words)."""
    return (sum(map(_DARIJA.__contains__, tokens)), sum(map(_FR.__contains__, tokens)),
            sum(map(_EN.__contains__, tokens)))


def _is_arabizi(darija: int, fr: int, en: int) -> bool:
    """Darija written in Latin letters: more Darija function words than French or English ones."""
    return darija >= 2 and darija > fr and darija > en


def detect_language(tokens: list[str]) -> str | None:
    """Best guess among 'ar' (MSA, Darija in Arabic script and Arabizi), 'fr' and 'en'."""
    return _language(tokens, *_function_words(tokens))


def _language(tokens: list[str], darija: int, fr: int, en: int) -> str | None:
    latin = list(filter(str.isascii, tokens))
    arabic = sum(map(_ARABIC_LETTERS.__contains__, map(_FIRST_LETTER, filterfalse(str.isascii, tokens))))
    latin_words = len(latin) - sum(map(str.isdigit, latin))
    if not arabic and not latin_words:
        return None
    if arabic >= latin_words:
        return "ar"
    best = max((darija, "ar"), (fr, "fr"), (en, "en"))
    return best[1] if best[0] > 0 else "fr"


class ExampleModel:
    """Multinomial naive Bayes over normalised words, learned from labelled example messages.

    It only adds evidence to the lexicon scores (at most ``[routing] model_weight``, as much as one
    lexicon term), and only when examples are configured (``[routing] examples`` JSONL files, e.g.
    exported supervisor corrections) or given (cross-validation). Trains in milliseconds.
    """

    def __init__(self, examples: Sequence[Mapping[str, Any]], categories: Iterable[str], alpha: float = 0.5) -> None:
        allowed = set(categories) | {TRIAGE}
        self.alpha = alpha
        self.counts: dict[str, Counter[str]] = {}
        for row in examples:
            label = row.get("category")
            label = TRIAGE if label in (None, "", "other") else str(label)
            if label not in allowed:
                continue
            self.counts.setdefault(label, Counter()).update(self.features(tokenize(str(row.get("text", "")))[0]))
        self.vocab = set().union(*self.counts.values()) if self.counts else set()
        self.totals = {label: sum(c.values()) for label, c in self.counts.items()}

    @staticmethod
    def features(tokens: list[str]) -> set[str]:
        """Distinct words of 3+ letters, Arabic ones also without their article/clitics."""
        out: set[str] = set()
        for token in tokens:
            if len(token) < 3 or token.isdigit():
                continue
            out.add(token)
            if is_arabic(token):
                for prefix in ("وال", "فال", "بال", "لل", "ال"):
                    if token.startswith(prefix) and len(token) - len(prefix) >= 3:
                        out.add(token[len(prefix):])
                        break
        return out

    def __bool__(self) -> bool:
        return len(self.counts) > 1

    def predict(self, tokens: list[str]) -> tuple[str, float] | None:
        """The most likely label and its posterior probability (uniform priors)."""
        feats = [f for f in self.features(tokens) if f in self.vocab]
        if not feats or not self:
            return None
        size = len(self.vocab)
        logp = {}
        for label, counter in self.counts.items():
            denom = math.log(self.totals[label] + self.alpha * size)
            logp[label] = sum(math.log(counter.get(f, 0) + self.alpha) - denom for f in feats)
        best = max(logp, key=logp.__getitem__)
        top = logp[best]
        total = sum(math.exp(v - top) for v in logp.values())
        return best, 1.0 / total


def read_examples(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Labelled example messages from JSONL files (``text`` + ``category``)."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                for number, line in enumerate(fh, 1):
                    if line.strip():
                        row = json.loads(line)
                        if isinstance(row, dict) and "text" in row and "category" in row:
                            rows.append(row)
        except OSError as exc:
            raise ConfigError(f"routing.examples: cannot read {path} ({exc.strerror}); fix the path") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"routing.examples: {path}:{number} is not valid JSON; fix or remove the line") from exc
    return rows


_BUILT: dict[int, tuple[GatewayConfig, "Router"]] = {}


class Router:
    """Routes complaint texts with the lexicons in ``config/routing/`` and the configured taxonomy."""

    def __init__(self, config: GatewayConfig, lexicon: Lexicon,
                 examples: Sequence[Mapping[str, Any]] = ()) -> None:
        self.config = config
        routing: Mapping[str, Any] = config.routing
        self.threshold = float(routing.get("threshold", 0.5))
        self.scale = float(routing.get("confidence_scale", 2.0))
        self.sharpness = float(routing.get("sharpness", 1.0))
        self.subject_boost = float(routing.get("subject_boost", 2.0))
        self.locative_factor = float(routing.get("locative_factor", 0.35))
        self.problem_boost = float(routing.get("problem_boost", 1.5))
        self.problem_window = int(routing.get("problem_window", 5))
        self.repeat_factor = float(routing.get("repeat_factor", 0.25))
        self.decay = float(routing.get("decay", 0.85))
        self.aside_factor = float(routing.get("aside_factor", 0.5))
        self.first_bonus = float(routing.get("first_bonus", 1.0))
        self.phrase_bonus = float(routing.get("phrase_bonus", 0.25))
        self.max_chars = int(routing.get("max_chars", 3000))
        self.lexicon: CompiledLexicon = lexicon.compile(cues=False)
        self.cue_lexicon: CompiledLexicon = lexicon.compile(cues=True)
        spellings, weak = place_spellings(config.places, routing)
        stop = {w for w in self.lexicon.exact if w.isascii()}
        self.places = PlaceMatcher(spellings, weak, stop)
        self.model_weight = float(routing.get("model_weight", 2.0))
        self.model = ExampleModel(examples, config.categories)
        # Routing is a function of the text: the ingest routes a message before its transaction
        # (``Core.prepare``) and the dialogue's own call finds the answer here; a storm of one
        # forwarded text is routed once.
        self._memo = functools.lru_cache(maxsize=1024)(self._route)

    @classmethod
    def from_config(cls, config: GatewayConfig, examples: Sequence[Mapping[str, Any]] = ()) -> "Router":
        """Build a router from a loaded configuration.

        Loads the lexicons in ``config/routing/lexicon/`` plus the ``[routing]`` overrides
        (``synonyms``, ``lexicons``, ``place_spellings``, ``combos``...). Labelled ``examples``
        and the JSONL files named by ``[routing] examples`` train the example model. Building
        takes about 0.2 s; the router built for a configuration object is reused when the same
        object is passed again (without ``examples``).
        """
        if not examples:
            cached = _BUILT.get(id(config))
            if cached is not None and cached[0] is config and isinstance(cached[1], cls):
                return cached[1]
        paths = config.routing.get("examples", ())
        if isinstance(paths, (str, Path)):
            paths = [paths]
        router = cls(config, load_lexicon(config.categories, config.routing), list(examples) + read_examples(paths))
        if not examples:
            if len(_BUILT) >= 8:
                _BUILT.clear()
            _BUILT[id(config)] = (config, router)
        return router

    def detect_place(self, text: str) -> str | None:
        """The id of the configured place named in ``text``, if any."""
        hit = self.places.find(tokenize(text, squeeze=False)[0])
        return hit.place if hit else None

    def scores(self, text: str) -> tuple[dict[str, float], list[str], list[str], list[str]]:
        """Category scores (``_triage`` included), the reasons, and the tokens/surfaces of ``text``."""
        scores, reasons, tokens, surfaces, _lang = self._scores(text, split_words(text))
        return scores, reasons, tokens, surfaces

    def _scores(self, text: str, words: list[str]) -> tuple[dict[str, float], list[str], list[str], list[str],
                                                             str | None]:
        """:meth:`scores` of ``text`` split into ``words``, and the language of its tokens."""
        tokens, surfaces, aside = _tokenize_with_asides(text, words)
        subject_end = 0
        if _SUBJECT.match(text):
            subject_end = len(tokenize(text.split("\n", 1)[0])[0])
        counts = _function_words(tokens)
        matches = self.lexicon.match(tokens, arabizi=_is_arabizi(*counts))
        cue_matches = self.cue_lexicon.match(tokens)
        fillers = self.lexicon.fillers
        n = len(tokens)
        locative_end = [False] * (n + 1)
        problem_near = [False] * (n + 1)
        negated_at = [False] * (n + 1)
        negation = [False] * n
        for i in compress(range(n), map(str.startswith, tokens, repeat(_NEGATION_START))):
            if _negated_token(tokens[i]):
                negation[i] = True
                _mark(negated_at, i, min(n, i + 3) + 1)
        for m in cue_matches:
            weights = m.weights
            if ATTACHED in weights:
                j, reach = m.end, 4
                while j < n and reach:
                    locative_end[j] = True
                    reach -= tokens[j] not in fillers
                    j += 1
            if LOCATIVE in weights or SELF in weights:
                j = m.end
                while j < n and tokens[j] in fillers and j < m.end + 2:
                    locative_end[j] = True
                    j += 1
                if j < n:
                    locative_end[j] = True
                    if SELF in weights and j + 1 < n and tokens[j + 1] not in fillers \
                            and not tokens[j + 1].startswith("و"):
                        locative_end[j + 1] = True
            if PROBLEM in weights:
                _mark(problem_near, max(0, m.start - self.problem_window), min(n, m.end + 3) + 1)
            if NEGATION in weights:
                _mark(negated_at, m.end, min(n, m.end + 3) + 1)
        cues: set[str] = set()
        for m in cue_matches:
            if negated_at[m.start] or True in negation[m.start:m.end]:
                cues.update(t for t in m.weights if t not in NEGATABLE)
            else:
                cues.update(m.weights)
        per_target: dict[str, list[float]] = {}
        evidence: dict[str, list[tuple[float, str]]] = {}
        seen: dict[tuple[str, ...], int] = {}
        first = True
        for m in matches:
            start, end, term, weights = m.start, m.end, m.term, m.weights
            count = seen[term] = seen.get(term, 0) + 1
            if count > 3:
                continue
            factor = 1.0 if count == 1 else self.repeat_factor
            if len(term) > 1:
                words_in_term = sum(1 for k in term if len(k) > 2 and k not in fillers)
                if words_in_term > 1:
                    factor *= min(1.0 + self.phrase_bonus * (words_in_term - 1), 1.0 + 2 * self.phrase_bonus)
            if start < subject_end:
                factor *= self.subject_boost
            if aside[start]:
                factor *= self.aside_factor
            if locative_end[start]:
                factor *= self.locative_factor
            elif problem_near[start] or problem_near[end - 1]:
                factor *= self.problem_boost
            if first and not locative_end[start] and any(t != NEUTRAL and not t.startswith("_") for t in weights):
                factor *= self.first_bonus
                first = False
            negated = negated_at[start] or True in negation[start:end]
            surface = " ".join(dict.fromkeys(surfaces[start:end])) if count == 1 else ""
            for target, weight in weights.items():
                if target == NEUTRAL or (negated and target == TRIAGE):
                    continue
                per_target.setdefault(target, []).append(weight * factor)
                if count == 1:
                    evidence.setdefault(target, []).append((weight * factor, surface))
        if self.model:
            guess = self.model.predict(tokens)
            if guess and guess[1] > 0.5:
                weight = self.model_weight * (guess[1] - 0.5) * 2
                per_target.setdefault(guess[0], []).append(weight)
                evidence.setdefault(guess[0], []).append((weight, f"examples p={guess[1]:.2f}"))
        for combo in self.lexicon.combos:
            if cues.issuperset(combo.cues):
                for target, weight in combo.add.items():
                    per_target.setdefault(target, []).append(weight)
                    evidence.setdefault(target, []).append((weight, combo.reason))
        scores = {}
        for target, weights in per_target.items():
            weights.sort(reverse=True)
            scores[target] = sum(w * self.decay ** k for k, w in enumerate(weights))
        reasons = []
        for target, items in evidence.items():
            for _w, what in sorted(items, key=lambda x: -x[0])[:4]:
                reasons.append(f"{target}: '{what}'")
        return scores, reasons, tokens, surfaces, _language(tokens, *counts)

    def route(self, text: str, channel: str | None = None, category_hint: str | None = None) -> RoutingResult:
        """Route one message. A valid ``category_hint`` (e.g. an IVR keypad choice) wins with confidence 1.

        Only the first ``[routing] max_chars`` characters (3000) are read: the point of a complaint
        comes early, and this keeps the cost of very long e-mails bounded. ``channel`` is accepted
        for future per-channel rules and does not change the routing today.
        """
        return self._memo((text or "")[: self.max_chars], category_hint)

    def _route(self, text: str, category_hint: str | None) -> RoutingResult:
        words = split_words(text)
        scores, reasons, _tokens, _surfaces, language = self._scores(text, words)
        place_tokens, place_surfaces = tokenize_words(words, squeeze=False)
        hit = self.places.find(place_tokens)
        place = hit.place if hit else None
        place_reason = (f"place: '{' '.join(dict.fromkeys(place_surfaces[hit.start:hit.end]))}' -> {place}",) if hit else ()
        if category_hint and category_hint in self.config.categories:
            return RoutingResult(category_hint, self.config.administration_for(category_hint, place), place, 1.0,
                                 (f"{category_hint}: hint",) + place_reason, language)
        triage = max(scores.pop(TRIAGE, 0.0), 0.0)
        ranked = sorted(((s, c) for c, s in scores.items() if s > 0), reverse=True)
        if not ranked:
            return RoutingResult(None, None, place, 0.0, place_reason, language)
        top, category = ranked[0]
        second = ranked[1][0] if len(ranked) > 1 else 0.0
        p = self.sharpness
        confidence = (1.0 - math.exp(-((top / self.scale) ** 2))) * top ** p / (top ** p + second ** p + triage ** p)
        confidence = round(max(0.0, min(1.0, confidence)), 3)
        kept = tuple(r for r in reasons if r.startswith(f"{category}:")) + place_reason
        if triage:
            kept += tuple(r for r in reasons if r.startswith(f"{TRIAGE}:"))[:2]
        if confidence < self.threshold:
            return RoutingResult(None, None, place, confidence, kept, language)
        return RoutingResult(category, self.config.administration_for(category, place), place, confidence,
                             kept, language)
