"""RQ delivery workers (`gateway worker`) killed mid-send, and all of them stopped for a while."""
from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.faults.harness import (LOAD, DatabaseView, SmsLoad, check_ledger, fault_env, settle, start_serve,
                                  wait_async)
from tests.support.processes import free_port, redis_queue  # noqa: F401


async def test_rq_worker_sigkilled_mid_send(tmp_path: Path, processes, provider, shared_pg_url,
                                            redis_queue) -> None:
    port = free_port()
    env = fault_env(tmp_path, provider.base_url, database_url=shared_pg_url, redis_url=redis_queue[0],
                    queue_name=redis_queue[1])
    start_serve(processes, env, port)
    workers = [processes("worker", env=env) for _ in range(2)]
    load = SmsLoad(f"http://127.0.0.1:{port}", LOAD, series=2)
    running = load.start()
    view = DatabaseView(shared_pg_url)
    try:
        await load.wait_acked(LOAD // 3)
        provider.set_mode("hang")  # both workers end up waiting on the provider …
        await wait_async(lambda: provider.fake.refused["hang"] >= 2, 30, "both workers to be mid-send")
        await asyncio.to_thread(workers[0].kill, signal.SIGKILL)  # … one dies there …
        provider.set_mode("ok")  # … and the provider accepts what it had sent
        workers.append(processes("worker", env=env))
        await load.wait_acked(2 * LOAD // 3)
        await asyncio.to_thread(workers[1].kill, signal.SIGKILL)
        workers.append(processes("worker", env=env))
        await running
        await settle(view, provider, load)
        check_ledger("RQ worker SIGKILL mid-send x2 (PostgreSQL, Redis)", view, load, provider,
                     notes=f"held by the provider when killed: {provider.fake.refused['hang']}")
    finally:
        view.close()


async def test_all_workers_stopped_then_restarted(tmp_path: Path, processes, provider, shared_pg_url,
                                                  redis_queue) -> None:
    port = free_port()
    env = fault_env(tmp_path, provider.base_url, database_url=shared_pg_url, redis_url=redis_queue[0],
                    queue_name=redis_queue[1])
    start_serve(processes, env, port)
    workers = [processes("worker", env=env) for _ in range(2)]
    load = SmsLoad(f"http://127.0.0.1:{port}", LOAD, series=3)
    running = load.start()
    view = DatabaseView(shared_pg_url)
    try:
        await load.wait_acked(LOAD // 4)
        for worker in workers:
            await asyncio.to_thread(worker.kill, signal.SIGTERM)
        during = len(provider.messages)
        await load.wait_acked(3 * LOAD // 4)  # ingest keeps accepting with no worker at all
        backlog = view.outbox_open()
        assert backlog > 0 and len(provider.messages) == during
        workers = [processes("worker", env=env) for _ in range(2)]
        await running
        await settle(view, provider, load)
        check_ledger("all RQ workers stopped, then restarted (PostgreSQL, Redis)", view, load, provider,
                     notes=f"backlog while stopped={backlog}")
    finally:
        view.close()
