"""Redis restarted, and Redis unreachable for a while, during a load: ingest keeps accepting into
the database (Redis is never on the webhook's path) and delivery catches up from the outbox."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.faults.harness import (LOAD, DatabaseView, SmsLoad, check_ledger, fault_env, settle, start_serve,
                                  wait_async)
from tests.support.processes import free_port


@pytest.mark.parametrize("outage", [0.0, 6.0], ids=["restart", "unreachable-6s"])
async def test_redis_goes_away_during_load(outage: float, tmp_path: Path, processes, provider, shared_pg_url,
                                           private_redis) -> None:
    port = free_port()
    env = fault_env(tmp_path, provider.base_url, database_url=shared_pg_url, redis_url=private_redis.url)
    start_serve(processes, env, port)
    workers = [processes("worker", env=env) for _ in range(2)]
    load = SmsLoad(f"http://127.0.0.1:{port}", LOAD, series=4 if outage else 5)
    running = load.start()
    view = DatabaseView(shared_pg_url)
    try:
        await load.wait_acked(LOAD // 3)
        await asyncio.to_thread(private_redis.stop)  # no persistence: the queued jobs are gone
        acked_before = load.acked
        if outage:
            await asyncio.sleep(outage)
            assert load.acked > acked_before, "ingest stopped while Redis was away"
        await asyncio.to_thread(private_redis.start)
        await running
        for worker in workers:
            assert worker.proc.poll() is None, worker.output()[-3000:]
        await settle(view, provider, load)
        for worker in workers:
            assert worker.proc.poll() is None, worker.output()[-3000:]
        check_ledger(f"Redis {'unreachable %.0fs' % outage if outage else 'restarted'} during load "
                     "(PostgreSQL, 2 RQ workers)", view, load, provider,
                     notes=f"acked while Redis was away={load.acked - acked_before if outage else 'n/a'}")
    finally:
        view.close()
