"""`gateway serve` (embedded: SQLite, in-process delivery) killed with SIGKILL in the middle of a
load and restarted: providers retry what was not acknowledged; nothing is lost or sent twice."""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.faults.harness import LOAD, DatabaseView, SmsLoad, check_ledger, fault_env, settle, start_serve
from tests.support.processes import free_port


async def test_serve_sigkilled_mid_load_and_restarted(tmp_path: Path, processes, provider) -> None:
    port = free_port()
    env = fault_env(tmp_path, provider.base_url)
    gateway = start_serve(processes, env, port)
    load = SmsLoad(f"http://127.0.0.1:{port}", LOAD, series=1)
    running = load.start(deadline=150)
    kills = 0
    for fraction in (0.3, 0.6):
        await load.wait_acked(int(LOAD * fraction))
        await asyncio.to_thread(gateway.kill, signal.SIGKILL)
        kills += 1
        await asyncio.sleep(0.5)
        gateway = await asyncio.to_thread(start_serve, processes, env, port)
    await running
    view = DatabaseView(f"sqlite:///{tmp_path / 'var' / 'gateway.sqlite3'}")
    try:
        await settle(view, provider, load)
        check_ledger("serve SIGKILL x2 + restart (SQLite, in-process delivery)", view, load, provider,
                     notes=f"kills={kills}")
    finally:
        view.close()
