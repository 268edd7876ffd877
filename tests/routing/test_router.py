"""Router behaviour: triage, threshold, category hint, branches, configuration-only extensions."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from config.loader import load_config
from config.settings import ConfigError
from conversations.routing import Router, RoutingResult


@pytest.mark.parametrize("text", [
    "",
    "   ",
    "asdf qwer zxcv 12345",
    "ok",
    "السلام عليكم",
    "salam 3likom",
    "Bonjour",
    "What time does the match start tonight?",
    "Quel temps fera-t-il demain à Rabat ?",
    "شكون ربح الماتش البارح؟",
    "🙏🙏🙏",
])
def test_gibberish_and_off_topic_go_to_triage(router: Router, text: str) -> None:
    result = router.route(text)
    assert result.category is None
    assert result.administration is None
    assert result.confidence < router.threshold


@pytest.mark.parametrize("text", [
    "Merci beaucoup, l'eau est revenue ce matin, bon travail",
    "شكرا جزيلا، رجع الضو للحي",
    "Thank you, the street lights are working again",
    "Comment suivre ma réclamation ? Je n'ai pas reçu de numéro",
    "how do I send a complaint about my neighbour?",
    "عيطو ليا عافاكم ضروري",
])
def test_thanks_and_questions_about_the_service_go_to_triage(router: Router, text: str) -> None:
    assert router.route(text).category is None


def test_ambiguous_message_goes_to_triage_not_to_a_guess(router: Router) -> None:
    result = router.route("Problème avec l'école et aussi avec l'hôpital")
    assert result.category is None
    assert 0 < result.confidence < router.threshold


def test_unresolved_problem_is_not_mistaken_for_thanks(router: Router) -> None:
    result = router.route("Merci de faire vite, l'eau n'est toujours pas revenue depuis 3 jours, coupure totale")
    assert result.category == "water"


def test_threshold_is_configurable() -> None:
    text = "la route"
    low = Router.from_config(load_config(overrides={"routing": {"threshold": 0.05}})).route(text)
    high = Router.from_config(load_config(overrides={"routing": {"threshold": 0.99}})).route(text)
    assert low.category == "roads"
    assert high.category is None and high.confidence == low.confidence


def test_result_fields(router: Router) -> None:
    result = router.route("Coupure d'électricité depuis ce matin à Oujda")
    assert isinstance(result, RoutingResult)
    assert result.category == "electricity"
    assert result.administration == "electricity_utility"
    assert result.place == "oujda"
    assert 0.5 <= result.confidence <= 1.0
    assert result.language == "fr"
    assert any(r.startswith("electricity:") for r in result.reasons)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.category = "water"  # type: ignore[misc]


def test_category_hint_wins_with_full_confidence(router: Router) -> None:
    result = router.route("الما مقطوع فوهران", channel="ivr", category_hint="health")
    assert result.category == "health"
    assert result.administration == "health_ministry"
    assert result.confidence == 1.0
    assert result.place == "oran"


def test_unknown_category_hint_is_ignored(router: Router) -> None:
    result = router.route("الما مقطوع فوهران", category_hint="not-a-category")
    assert result.category == "water"


def test_several_categories_share_an_administration(router: Router) -> None:
    waste = router.route("Les poubelles ne sont pas ramassées depuis une semaine")
    lights = router.route("Les lampadaires de la rue sont éteints depuis un mois")
    assert waste.category == "waste" and lights.category == "street_lighting"
    assert waste.administration == lights.administration == "municipality"


BRANCHES = {"administrations": {"water_utility": {"branches": {
    "oran": {"id": "water_utility.oran", "name": {"fr": "Direction de l'eau d'Oran"}},
    "casablanca": {},
}}}}


def test_branch_routing() -> None:
    router = Router.from_config(load_config(overrides=BRANCHES))
    assert router.route("الما مقطوع فوهران من يومين").administration == "water_utility.oran"
    assert router.route("Coupure d'eau à Oran depuis hier").administration == "water_utility.oran"
    assert router.route("lma m9tou3 f Casa").administration == "water_utility.casablanca"
    national = router.route("الما مقطوع فسطيف من يومين")
    assert national.place == "setif" and national.administration == "water_utility"
    assert router.route("Coupure d'eau depuis hier").administration == "water_utility"
    other = router.route("Coupure d'électricité à Oran")
    assert other.place == "oran" and other.administration == "electricity_utility"


NEW_CATEGORY = {
    "administrations": {"culture_ministry": {"name": {"fr": "Ministère de la culture", "en": "Culture"}}},
    "categories": {"libraries": {"administration": "culture_ministry",
                                 "name": {"fr": "Bibliothèques", "en": "Libraries", "ar": "المكتبات"},
                                 "description": "public libraries and reading rooms"}},
    "routing": {"synonyms": {"libraries": ["bibliothèque", "library", "المكتبة العمومية", "lmaktaba"],
                             "water": ["robinet sec"]}},
}


def test_category_and_synonyms_added_in_configuration_route_without_code() -> None:
    router = Router.from_config(load_config(overrides=NEW_CATEGORY))
    for text in ("La bibliothèque municipale est fermée depuis six mois",
                 "The public library has had no books delivered this year",
                 "المكتبة العمومية مسدودة من شهور",
                 "lmaktaba dyal l7ay msdouda"):
        result = router.route(text)
        assert result.category == "libraries", (text, result)
        assert result.administration == "culture_ministry"
    assert router.route("robinet sec").category == "water"


def test_synonym_tiers_and_extra_lexicon_file(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text('[libraries]\nstrong = ["livres*", "kutub"]\n[unknown_category]\nstrong = ["x"]\n', encoding="utf-8")
    overrides = {**NEW_CATEGORY, "routing": {"lexicons": [str(extra)],
                                             "synonyms": {"libraries": {"strong": ["salle de lecture"]}}}}
    router = Router.from_config(load_config(overrides=overrides))
    assert router.route("Il n'y a plus de livres pour les enfants").category == "libraries"
    assert router.route("la salle de lecture est fermée").category == "libraries"


def test_disabled_category_is_never_chosen() -> None:
    router = Router.from_config(load_config(overrides={"categories": {"water": {"disabled": True}}}))
    assert router.route("Coupure d'eau depuis trois jours, plus une goutte au robinet").category != "water"


@pytest.mark.parametrize("overrides, message", [
    ({"routing": {"synonyms": {"no_such_category": ["x"]}}}, "routing.synonyms.no_such_category"),
    ({"routing": {"synonyms": {"water": 3}}}, "routing.synonyms.water"),
    ({"routing": {"lexicons": ["/nonexistent/lexicon.toml"]}}, "routing.lexicons"),
])
def test_configuration_errors_name_the_setting(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Router.from_config(load_config(overrides=overrides))


def test_examples_model_adds_evidence() -> None:
    examples = [{"text": "le hammam public est fermé", "category": "urbanism"} for _ in range(3)]
    examples += [{"text": "le bus ne passe plus", "category": "transport"} for _ in range(3)]
    router = Router.from_config(load_config(), examples=examples)
    result = router.route("le hammam est fermé depuis lundi")
    assert any("examples" in r for r in result.reasons)


def test_router_is_built_once_per_config_and_is_stable(config) -> None:  # type: ignore[no-untyped-def]
    # Speed is measured by bench/route_bench.py, not asserted here (tests stay deterministic).
    router = Router.from_config(config)
    assert Router.from_config(config) is router
    text = "Bonjour, coupure d'eau depuis trois jours dans tout le quartier à Fès, aucune information " * 3
    first = router.route(text)
    assert all(router.route(text) == first for _ in range(20))
    assert first.category == "water" and first.place == "fes"


_ROUTE_ALL = """
import json, sys
from config.loader import load_config
from conversations.routing import Router
router = Router.from_config(load_config())
out = []
for path in sys.argv[1:]:
    for line in open(path, encoding="utf-8"):
        if line.strip():
            text = json.loads(line)["text"]
            for variant in (text, text.upper(), text + " " + text[: len(text) // 2]):
                r = router.route(variant)
                out.append([r.category, r.administration, r.place, r.confidence, r.language, list(r.reasons)])
print(json.dumps(out))
"""


def test_routing_does_not_depend_on_the_hash_seed(dev_file) -> None:  # type: ignore[no-untyped-def]
    """Sets of lexicon keys are iterated in a fixed order: the same text gets the same category,
    place, confidence and reasons whatever PYTHONHASHSEED a process starts with."""
    import subprocess
    import sys

    from tests.routing.conftest import OWN_FILE, REPO

    outputs = set()
    for seed in ("1", "4", "11"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", _ROUTE_ALL, str(dev_file), str(OWN_FILE)], env=env,
                              capture_output=True, text=True, timeout=300, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1
