"""The JSONL routing command, the evaluation command and the figures on labelled files."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from config.loader import GatewayConfig
from conversations.routing.cli import evaluate_main, route_jsonl
from conversations.routing.evaluate import Tally, read_labelled, run, tally

from .conftest import OWN_FILE


def test_route_jsonl_output_format(config: GatewayConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([
        json.dumps({"id": "a", "text": "الما مقطوع فوهران", "channel": "sms"}, ensure_ascii=False),
        "",
        json.dumps({"id": 7, "text": "Bonjour"}),
        "   ",
        json.dumps({"id": "c", "text": "Coupure de courant à Oujda depuis ce matin", "channel": None}),
    ]) + "\n", encoding="utf-8")
    out = io.StringIO()
    assert route_jsonl(config, str(source), out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert list(first) == ["id", "category", "administration", "place", "confidence"]
    assert first == {"id": "a", "category": "water", "administration": "water_utility", "place": "oran",
                     "confidence": first["confidence"]}
    assert second["id"] == 7 and second["category"] is None and second["administration"] is None
    assert third["category"] == "electricity" and third["place"] == "oujda"
    assert 0.0 <= first["confidence"] <= 1.0
    assert capsys.readouterr().err == ""


def test_route_jsonl_keeps_non_ascii_unescaped(config: GatewayConfig, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "رقم-1", "text": "الضو مقطوع"}, ensure_ascii=False) + "\n", encoding="utf-8")
    out = io.StringIO()
    route_jsonl(config, str(source), out)
    assert '"رقم-1"' in out.getvalue()


def test_route_jsonl_reports_malformed_lines_and_continues(config: GatewayConfig, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([
        json.dumps({"id": "ok1", "text": "zbel 3amer f zan9a"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "no-text"}),
        json.dumps({"id": "ok2", "text": "the garbage was not collected"}),
    ]) + "\n", encoding="utf-8")
    out = io.StringIO()
    assert route_jsonl(config, str(source), out) == 1
    ids = [json.loads(line)["id"] for line in out.getvalue().splitlines()]
    assert ids == ["ok1", "ok2"]
    err = capsys.readouterr().err
    assert "line 2" in err and "line 3" in err and "line 4" in err
    assert "line 1:" not in err and "line 5" not in err


def test_route_jsonl_missing_file(config: GatewayConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert route_jsonl(config, str(tmp_path / "absent.jsonl"), io.StringIO()) == 1
    assert "absent.jsonl" in capsys.readouterr().err


def test_tally_counts_triage_apart_from_misroutes(config: GatewayConfig) -> None:
    rows = [
        {"text": "Coupure d'eau depuis trois jours", "category": "water", "place": None, "lang": "fr"},
        {"text": "Bonjour", "category": "other", "place": None, "lang": "fr"},
        {"text": "Bonjour", "category": "water", "place": None, "lang": "fr"},
        {"text": "Coupure d'eau à Fès", "category": "electricity", "place": "fes", "lang": "fr"},
    ]
    overall = tally(run(config, rows))["overall"]
    assert (overall.n, overall.correct, overall.triaged, overall.misrouted, overall.place_ok) == (4, 2, 2, 1, 4)
    assert Tally().rate("accuracy") == 0.0


def test_evaluate_main_prints_figures(config: GatewayConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "labelled.jsonl"
    path.write_text(OWN_FILE.read_text(encoding="utf-8") + "{broken\n", encoding="utf-8")
    out = io.StringIO()
    assert evaluate_main(config, str(path), out) == 1
    text = out.getvalue()
    for needle in ("overall", "lang=ary", "lang=ar-Latn", "lang=fr", "lang=en", "channel=sms", "channel=ivr",
                   "detected=ar", "accuracy", "triage", "misrouted", "place", "targets"):
        assert needle in text
    assert "routing.jsonl" not in text
    broken_line = len(OWN_FILE.read_text(encoding="utf-8").splitlines()) + 1
    assert f":{broken_line}:" in capsys.readouterr().err


def _figures(config: GatewayConfig, path: Path, cv: int | None = None) -> Tally:
    rows, errors = read_labelled(path)
    assert not errors
    return tally(run(config, rows, cv=cv))["overall"]


def test_targets_on_the_shared_dev_file(config: GatewayConfig, dev_file: Path) -> None:
    """The issue's targets, with nothing learned from the file (lexicons are shipped data)."""
    overall = _figures(config, dev_file)
    assert overall.n == len(read_labelled(dev_file)[0])
    assert overall.rate("accuracy") >= 0.90
    assert overall.rate("misrouted") <= 0.05
    assert overall.rate("place") >= 0.95


def test_targets_on_the_dev_file_with_cross_validation(config: GatewayConfig, dev_file: Path) -> None:
    """With the example model trained on the other folds, the figures must hold too."""
    overall = _figures(config, dev_file, cv=5)
    assert overall.rate("accuracy") >= 0.90
    assert overall.rate("misrouted") <= 0.05
    assert overall.rate("place") >= 0.95


def test_targets_on_messages_written_for_these_tests(config: GatewayConfig) -> None:
    overall = _figures(config, OWN_FILE)
    assert overall.rate("accuracy") >= 0.90
    assert overall.rate("misrouted") <= 0.05
    assert overall.rate("place") >= 0.95
