"""The load benchmark's harness works: a short open-loop run on the embedded default comes out
with an exact ledger (every acknowledged message stored once, one complaint, one reply sent,
one reply received by the fake provider). No timing is asserted."""
from __future__ import annotations

import time

from bench.run import Plan, run


def test_load_harness_ledger_is_exact_on_embedded() -> None:
    started = time.monotonic()
    reports = run(["embedded"], Plan(duration=2.0, closed=False, rates=(25.0,), warmup=8, drain_timeout=20.0),
                  baseline=False, log=False)
    assert len(reports) == 1
    report = reports[0]
    assert report.sent > 10 and report.acked == report.sent and report.errors == 0
    assert report.ledger == "exact", report.ledger
    assert report.e2e_p50_ms is not None and report.drain_s is not None
    assert time.monotonic() - started < 60
