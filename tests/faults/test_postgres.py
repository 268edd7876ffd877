"""PostgreSQL restarted during a load (a private cluster, never the shared one): webhooks that
cannot be stored answer 503 so the provider retries; no 2xx for anything not stored."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.harness import LOAD, DatabaseView, SmsLoad, check_ledger, fault_env, settle, start_serve
from tests.support.processes import ROOT, free_port


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_restarted_during_load(mode: str, tmp_path: Path, processes, provider,
                                              private_postgres) -> None:
    port = free_port()
    env = fault_env(tmp_path, provider.base_url, database_url=private_postgres.url)
    subprocess.run([sys.executable, "-m", "gateway", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=120)
    start_serve(processes, env, port)
    load = SmsLoad(f"http://127.0.0.1:{port}", LOAD, series=6 if mode == "fast" else 7)
    running = load.start()
    view = DatabaseView(private_postgres.url)
    try:
        await load.wait_acked(LOAD // 3)
        await asyncio.to_thread(private_postgres.stop, mode)
        refused_before = load.answers["503"]
        await asyncio.sleep(3.0)
        refused = load.answers["503"] - refused_before
        await asyncio.to_thread(private_postgres.start)
        await running
        assert refused > 0, "no webhook was answered 503 while the database was down"
        await settle(view, provider, load)
        check_ledger(f"PostgreSQL stopped ({mode}) for 3 s and restarted (in-process delivery)", view, load,
                     provider, notes=f"503 while down={refused}")
    finally:
        view.close()
