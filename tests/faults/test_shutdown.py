"""Graceful shutdown: SIGTERM lets in-flight requests and deliveries finish before the process exits."""
from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

from tests.faults.harness import LOAD, DatabaseView, SmsLoad, check_ledger, fault_env, settle, start_serve, wait_async
from tests.support.processes import free_port


async def test_sigterm_finishes_in_flight_requests_and_deliveries(tmp_path: Path, processes, provider) -> None:
    port = free_port()
    env = fault_env(tmp_path, provider.base_url)
    gateway = start_serve(processes, env, port)
    database = tmp_path / "var" / "gateway.sqlite3"
    load = SmsLoad(f"http://127.0.0.1:{port}", LOAD, series=9)
    running = load.start()
    view = DatabaseView(f"sqlite:///{database}")
    try:
        await load.wait_acked(LOAD // 3)
        provider.set_mode("hang")  # deliveries are in flight at the provider …
        await wait_async(lambda: provider.fake.refused["hang"] > 0, 30, "a delivery to be in flight")
        lock = sqlite3.connect(database, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")  # … and webhooks are in flight in the handler (a slow database)
        await asyncio.sleep(1.0)
        acked_at_sigterm = load.acked
        started = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(1.0)
        assert gateway.proc.poll() is None, "the gateway exited with work in flight"
        provider.set_mode("ok")
        lock.execute("COMMIT")
        lock.close()
        code = await asyncio.to_thread(gateway.proc.wait, 40)
        stopped_in = time.monotonic() - started
        assert code == 0, gateway.output()[-3000:]
        finished = load.acked - acked_at_sigterm
        assert finished > 0, "no request in flight at SIGTERM was answered"
        for cut in ("ServerDisconnectedError", "ClientOSError", "ClientPayloadError"):
            assert load.answers[cut] == 0, dict(load.answers)  # nobody was hung up on
        statuses = view.outbox_statuses()
        assert statuses.get("sending", 0) == 0, statuses  # every delivery in flight was recorded
        assert statuses.get("sent", 0) == len(provider.messages)
        held = provider.fake.refused["hang"]
        gateway = await asyncio.to_thread(start_serve, processes, env, port)
        await running
        await settle(view, provider, load)
        check_ledger("SIGTERM mid-load, then restart (SQLite, in-process delivery)", view, load, provider,
                     notes=f"in flight at SIGTERM: {finished} requests answered 200, {held} deliveries "
                           f"recorded; exit 0 after {stopped_in:.1f}s")
    finally:
        view.close()
