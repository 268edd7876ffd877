"""Routing latency benchmark.

Routes every message of a JSONL file (default ``../shared/data/routing_dev.jsonl``) several
times and prints per-message mean / p50 / p99 latency, throughput, the cost of building the
router, and the ratio to a baseline that only normalises the text.

Usage: ``python bench/route_bench.py [FILE] [--rounds N]``
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config.loader import load_config  # noqa: E402
from conversations.routing import Router, normalise  # noqa: E402

normalise_module = importlib.import_module("conversations.routing.normalise")

DEFAULT = ROOT.parent / "shared" / "data" / "routing_dev.jsonl"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _timed(fn, texts: list[str], rounds: int) -> list[float]:
    samples: list[float] = []
    for _ in range(rounds):
        for text in texts:
            start = time.perf_counter()
            fn(text)
            samples.append(time.perf_counter() - start)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", default=str(DEFAULT))
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    texts = [json.loads(line)["text"] for line in open(args.file, encoding="utf-8") if line.strip()]
    config = load_config()

    start = time.perf_counter()
    router = Router.from_config(config)
    build = time.perf_counter() - start

    normalise_module._CACHE.clear()
    cold = _timed(lambda t: router.route(t), texts, 1)
    gc.disable()
    try:
        route = _timed(lambda t: router.route(t), texts, args.rounds)
        base = _timed(normalise, texts, args.rounds)
    finally:
        gc.enable()

    def line(name: str, samples: list[float]) -> str:
        mean = statistics.fmean(samples)
        return (f"{name:<18} mean {mean * 1e3:7.3f} ms  p50 {_percentile(samples, 0.5) * 1e3:7.3f} ms  "
                f"p99 {_percentile(samples, 0.99) * 1e3:7.3f} ms  {1 / mean:10.0f} msg/s")

    print(f"{len(texts)} messages x {args.rounds} rounds from {args.file}")
    print(f"router build       {build * 1e3:.1f} ms")
    print(line("route (first pass)", cold))
    print(line("route", route))
    print(line("normalise only", base))
    print(f"route / normalise  {statistics.fmean(route) / statistics.fmean(base):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
