"""The deadline scheduler as a background service of ``gateway serve``, a CLI and an RQ job.

- ``gateway serve`` runs a tick every ``[clocks] interval_seconds`` (unless
  ``GATEWAY_SCHEDULER_ENABLED=false``); any number of serve processes may run it: one holds the
  lease, the others wait.
- ``gateway clocks tick`` runs one tick and prints what it did (for cron);
  ``gateway clocks run`` runs ticks forever.
- With RQ, ``gateway.clocks_service.tick_job`` is a job a worker can run (enqueue it from cron,
  or from RQ's scheduler); it re-enqueues itself when given ``every`` seconds.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from aiohttp import web

from conversations.scheduler import Scheduler
from gateway.http import GATEWAY

log = logging.getLogger(__name__)

SERVICE_KEY = "clocks_scheduler"


class SchedulerService:
    """An asyncio task that ticks every ``interval`` seconds; a failing tick never stops it."""

    def __init__(self, scheduler: Scheduler, interval: float | None = None) -> None:
        self.scheduler = scheduler
        self.interval = interval if interval is not None else scheduler.settings.interval_seconds
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deadline-scheduler")

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.scheduler.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler tick failed; will try again")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        with contextlib.suppress(Exception):
            await self.scheduler.core.db.run(self.scheduler.release_lease_sync)


async def start(app: web.Application) -> None:
    gw = app[GATEWAY]
    if not gw.settings.scheduler_enabled:
        log.info("deadline scheduler: disabled (GATEWAY_SCHEDULER_ENABLED=false)")
        return
    service = SchedulerService(Scheduler(gw.core))
    service.start()
    gw.extras[SERVICE_KEY] = service
    log.info("deadline scheduler: every %.0f s", service.interval)


async def stop(app: web.Application) -> None:
    service = app[GATEWAY].extras.pop(SERVICE_KEY, None)
    if service is not None:
        await service.stop()


def tick_job(every: float | None = None) -> dict[str, Any]:
    """RQ job: one tick (with the lease); with ``every``, enqueue the next run that many seconds later."""
    from datetime import timedelta

    from gateway.worker import _runtime

    gateway, _loop = _runtime()
    report = Scheduler(gateway.core).tick_sync()
    if every:
        from gateway.queue import rq_queue

        q = rq_queue(gateway.settings.redis_url or "", gateway.settings.queue_name)
        q.enqueue_in(timedelta(seconds=every), "gateway.clocks_service.tick_job", every, result_ttl=0)
    return {"ran": report.ran, **report.counts()}


def cli_run(args: argparse.Namespace, settings: Any) -> int:
    from gateway.context import build_gateway

    gateway = build_gateway(settings)
    scheduler = Scheduler(gateway.core)
    try:
        while True:
            report = scheduler.tick_sync()
            print(json.dumps({"ran": report.ran, **report.counts()}), flush=True)
            if args.action == "tick":
                return 0
            time.sleep(scheduler.settings.interval_seconds)
    finally:
        scheduler.release_lease_sync()
        gateway.db.close()
