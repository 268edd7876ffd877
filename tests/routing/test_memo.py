"""The per-word memos of routing stay bounded whatever citizens send, and never change a result."""
from __future__ import annotations

import importlib
import random

from conversations.routing import Router
from conversations.routing import lexicon

normalise = importlib.import_module("conversations.routing.normalise")


def _memos(router: Router) -> dict[str, dict]:
    return {
        "words": normalise._CACHE, "unsqueezed words": normalise._CACHE_UNSQUEEZED,
        "lexicon": router.lexicon._cache, "cue lexicon": router.cue_lexicon._cache,
        "skeletons": router.lexicon._skeleton_cache, "places": router.places._cache,
        "forms": lexicon._FORMS, "typo variants": lexicon._TYPO_VARIANTS,
    }


def test_remember_keeps_at_most_limit_entries_and_no_long_keys():
    memo: dict[str, int] = {}
    for i in range(25):
        assert normalise.remember(memo, f"w{i}", i, limit=10) == i
        assert len(memo) <= 10
    long_key = "x" * (normalise.MEMO_MAX_KEY + 1)
    assert normalise.remember(memo, long_key, 7) == 7
    assert long_key not in memo


def test_routing_memos_are_bounded(router, monkeypatch):
    monkeypatch.setattr(normalise, "MEMO_MAX_ENTRIES", 50)
    monkeypatch.setattr(lexicon, "_SHARED_LIMIT", 20)
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz" + "ابتثجحخدذرسشصضطعغفقكلمنهوي"
    for _ in range(40):
        words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 12))) for _ in range(20)]
        router.route(" ".join(words) + " " + "y" * 200)
    for name, memo in _memos(router).items():
        assert len(memo) <= 50, name
        assert all(len(key) <= normalise.MEMO_MAX_KEY for key in memo), name


def test_results_do_not_depend_on_what_is_remembered(router, monkeypatch):
    texts = ["Coupure d'eau depuis 3 jours à Oran, personne ne répond",
             "الما مقطوع عندنا فالحي من البارح",
             "3afakom dw ma kaynch f derb dyalna mn lbareh",
             "Objet: lampadaire (rue Ibn Sina)\nLa lumière de notre rue ne marche plus"]
    warm = [router.route(t) for t in texts]
    monkeypatch.setattr(normalise, "MEMO_MAX_ENTRIES", 3)
    monkeypatch.setattr(lexicon, "_SHARED_LIMIT", 2)
    for memo in _memos(router).values():
        memo.clear()
    assert [router.route(t) for t in texts] == warm
