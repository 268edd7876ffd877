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
    assert {"server", "provider", "postgres", "redis", "load generator"} <= set(report.cpu_share)
    assert report.cpu_share["server"] > 0 and report.cpu_share["load generator"] > 0
    assert time.monotonic() - started < 60


def test_cpu_and_memory_count_children_and_memory_samples_reuse_the_tree(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    import psutil

    from bench.common import ResourceMonitor, cpu_by_role

    # A parent whose child burns CPU and holds 50 MB, as `gateway serve --processes N` forks.
    code = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
            "'import time; b = bytearray(50_000_000); t = time.process_time()\\n"
            "while time.process_time() - t < 0.5: pass\\ntime.sleep(30)'])")
    real_children = psutil.Process.children
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        lookups = 0

        def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal lookups
            lookups += 1
            return real_children(self, *args, **kwargs)

        monkeypatch.setattr(psutil.Process, "children", counted)
        deadline = time.monotonic() + 20
        while cpu_by_role({"server": [parent.pid]})["server"] < 0.5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cpu_by_role({"server": [parent.pid]})["server"] >= 0.5  # the child's CPU, counted with its parent
        monitor = ResourceMonitor([parent.pid], interval=0.01, tree_every=60).start()
        lookups_before = lookups
        time.sleep(0.3)  # about 30 samples of memory
        monitor.stop()
        assert monitor.peak_one_mb > 50 and monitor.peak_mb > 50
        assert lookups == lookups_before  # the samples reuse the tree looked up at the start
    finally:
        for child in real_children(psutil.Process(parent.pid), recursive=True):
            child.kill()
        parent.kill()
        parent.wait()


def test_in_process_benchmark_ingests_and_delivers_every_message() -> None:
    from bench.ingest import bench

    figures = bench("sqlite", messages=24, warmup=8, batch=8, job=4)
    assert set(figures) == {"baseline", "ingest", "delivery"}
    # A new sender's complaint is a dozen statements; a job's claim and record two transactions.
    assert figures["ingest"]["statements"] > 5 and 0 < figures["delivery"]["statements"] < figures["ingest"]["statements"]
    assert all(f["cpu_ms"] > 0 and f["per_s"] > 0 for f in figures.values())
