"""Evaluate the router on a labelled JSONL file.

Each line: ``{"id", "text", "channel"?, "lang"?, "category", "place"?}`` where ``category`` is a
taxonomy id or ``other`` (the message should go to human triage). Printed per group (overall,
per labelled language, per detected language, per channel):

* accuracy: the category is right (``other`` is right when routed to triage);
* triage: share of messages sent to human triage;
* misrouted: share sent to a wrong category (triage is not a misroute);
* place: the place is right (no place is right when none is labelled).

``--cv K`` runs K-fold cross-validation: each fold is routed by a router that also learned from the
other folds (labelled examples feed the router's example model, see ``Router.from_config``), so the
figures stay honest when the evaluated file is also used for training. Without ``--cv`` the
router uses only the shipped data (lexicons and any configured example files).

Usage: ``python -m conversations.routing.evaluate FILE [--cv K] [--errors] [--config TOML]``
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, TextIO

from config.loader import GatewayConfig, load_config
from conversations.routing.router import Router, RoutingResult

TRIAGE_LABELS = frozenset({"other", "", None})
TARGETS = {"accuracy": 0.90, "misrouted": 0.05, "place": 0.95}


@dataclass
class Tally:
    """Counts for one group of messages."""
    n: int = 0
    correct: int = 0
    triaged: int = 0
    misrouted: int = 0
    place_ok: int = 0

    def add(self, gold: str | None, gold_place: str | None, result: RoutingResult) -> None:
        self.n += 1
        if result.category == gold:
            self.correct += 1
        if result.category is None:
            self.triaged += 1
        elif result.category != gold:
            self.misrouted += 1
        if result.place == gold_place:
            self.place_ok += 1

    def rate(self, what: str) -> float:
        """``accuracy``, ``triage``, ``misrouted`` or ``place`` as a fraction."""
        count = {"accuracy": self.correct, "triage": self.triaged, "misrouted": self.misrouted,
                 "place": self.place_ok}[what]
        return count / self.n if self.n else 0.0


@dataclass(frozen=True)
class Outcome:
    """One evaluated message."""
    row: dict[str, Any]
    gold: str | None
    result: RoutingResult


def read_labelled(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The labelled rows of a JSONL file and one error message per unusable line."""
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{path}:{number}: not valid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "category" not in row:
                errors.append(f"{path}:{number}: expected an object with \"text\" and \"category\"")
                continue
            rows.append(row)
    return rows, errors


def gold_category(row: dict[str, Any]) -> str | None:
    """The expected routing: the labelled category, None for ``other``."""
    label = row.get("category")
    return None if label in TRIAGE_LABELS else str(label)


def _folds(rows: Sequence[dict[str, Any]], k: int, seed: int) -> list[list[int]]:
    """Stratified folds (by category) of row indices."""
    by_label: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_label.setdefault(str(row.get("category")), []).append(i)
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    offset = 0
    for label in sorted(by_label):
        indices = by_label[label]
        rng.shuffle(indices)
        for j, index in enumerate(indices):
            folds[(j + offset) % k].append(index)
        offset += len(indices)
    return folds


def run(config: GatewayConfig, rows: Sequence[dict[str, Any]], cv: int | None = None, seed: int = 13) -> list[Outcome]:
    """Route every row (with K-fold cross-validation when ``cv`` is given)."""
    results: list[RoutingResult | None] = [None] * len(rows)
    if cv and cv > 1:
        for fold in _folds(rows, min(cv, len(rows)), seed):
            held = set(fold)
            training = [rows[i] for i in range(len(rows)) if i not in held]
            router = Router.from_config(config, examples=training)
            for i in fold:
                results[i] = router.route(rows[i]["text"], rows[i].get("channel"))
    else:
        router = Router.from_config(config)
        for i, row in enumerate(rows):
            results[i] = router.route(row["text"], row.get("channel"))
    return [Outcome(row, gold_category(row), res) for row, res in zip(rows, results) if res is not None]


def tally(outcomes: Iterable[Outcome]) -> dict[str, Tally]:
    """Tallies keyed by group name (``overall``, ``lang=..``, ``detected=..``, ``channel=..``)."""
    groups: dict[str, Tally] = {"overall": Tally()}
    for o in outcomes:
        keys = ["overall"]
        if o.row.get("lang"):
            keys.append(f"lang={o.row['lang']}")
        keys.append(f"detected={o.result.language or '-'}")
        keys.append(f"channel={o.row.get('channel') or '-'}")
        for key in keys:
            groups.setdefault(key, Tally()).add(o.gold, o.row.get("place"), o.result)
    return groups


def report(groups: dict[str, Tally], out: TextIO, title: str) -> None:
    """Print the table of figures and whether the targets are met."""
    out.write(f"{title}\n")
    out.write(f"{'group':<22}{'n':>5}{'accuracy':>10}{'triage':>9}{'misrouted':>11}{'place':>9}\n")

    def order(key: str) -> tuple[int, str]:
        prefix = key.split("=")[0]
        return ({"overall": 0, "lang": 1, "detected": 2, "channel": 3}.get(prefix, 4), key)

    for key in sorted(groups, key=order):
        t = groups[key]
        out.write(f"{key:<22}{t.n:>5}{t.rate('accuracy'):>10.1%}{t.rate('triage'):>9.1%}"
                  f"{t.rate('misrouted'):>11.1%}{t.rate('place'):>9.1%}\n")
    overall = groups["overall"]
    ok = (overall.rate("accuracy") >= TARGETS["accuracy"] and overall.rate("misrouted") <= TARGETS["misrouted"]
          and overall.rate("place") >= TARGETS["place"])
    out.write(f"targets (accuracy >= 90%, misrouted <= 5%, place >= 95%): {'met' if ok else 'NOT met'}\n")


def evaluate_main(config: GatewayConfig, path: str, out: TextIO, cv: int | None = None,
                  errors: bool = False) -> int:
    """Evaluate the router on the labelled JSONL file ``path`` and print the figures to ``out``.

    Returns 0, or 1 when some lines could not be read (they are reported on stderr and skipped).
    """
    rows, bad = read_labelled(path)
    for message in bad:
        sys.stderr.write(message + "\n")
    outcomes = run(config, rows, cv)
    how = f"{cv}-fold cross-validation" if cv and cv > 1 else "shipped data only, nothing learned from this file"
    report(tally(outcomes), out, f"routing evaluation of {path}: {len(rows)} messages ({how})")
    if errors:
        for o in outcomes:
            if o.result.category != o.gold or o.result.place != o.row.get("place"):
                out.write(f"- {o.row.get('id')}: expected {o.gold} / {o.row.get('place')}, got "
                          f"{o.result.category} / {o.result.place} ({o.result.confidence:.2f}) "
                          f"{'; '.join(o.result.reasons)}\n")
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m conversations.routing.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("file", help="labelled JSONL file")
    parser.add_argument("--cv", type=int, default=None, metavar="K", help="K-fold cross-validation")
    parser.add_argument("--errors", action="store_true", help="list the messages routed wrongly")
    parser.add_argument("--config", default=os.environ.get("GATEWAY_CONFIG"), help="TOML configuration (default: GATEWAY_CONFIG)")
    args = parser.parse_args(argv)
    config = load_config(Path(args.config) if args.config else None)
    return evaluate_main(config, args.file, sys.stdout, cv=args.cv, errors=args.errors)


if __name__ == "__main__":
    raise SystemExit(main())
