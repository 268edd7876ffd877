"""``gateway worker``: an RQ worker that delivers outbox rows.

It is a ``SimpleWorker`` (no fork per job) with one long-lived event loop and adapters, so a
job costs a claim, a provider call and a write. A sweeper thread re-enqueues what was lost.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import threading

from config.settings import ConfigError, Settings
from gateway.context import Gateway, build_gateway
from gateway.queue import QueueSweeper, rq_queue

log = logging.getLogger(__name__)

_state: dict[str, object] = {}


def _runtime() -> tuple[Gateway, asyncio.AbstractEventLoop]:
    if "gateway" not in _state:
        _state["gateway"] = build_gateway()
        _state["loop"] = asyncio.new_event_loop()
    return _state["gateway"], _state["loop"]  # type: ignore[return-value]


def deliver_job(*outbox_ids: int) -> int:
    """The RQ job: claim and send these outbox rows concurrently (rows someone else has are skipped)."""
    gateway, loop = _runtime()
    return loop.run_until_complete(gateway.delivery.deliver_ids(list(outbox_ids)))


def _sweeper(gateway: Gateway, stop: threading.Event) -> None:
    sweeper = QueueSweeper(rq_queue(gateway.settings.redis_url or "", gateway.settings.queue_name), gateway.delivery)
    while not stop.is_set():
        try:
            sweeper.sweep_sync()
        except Exception as exc:
            log.warning("worker sweep failed: %s", exc)
        stop.wait(1.0)


def run_worker(settings: Settings, burst: bool = False) -> None:
    from rq import SimpleWorker

    if not settings.redis_url:
        raise ConfigError("GATEWAY_REDIS_URL is not set: `gateway worker` delivers from Redis/RQ; set it "
                          "(e.g. redis://127.0.0.1:6379/0) or use `gateway serve` alone for in-process delivery")
    gateway = build_gateway(settings)
    _state["gateway"] = gateway
    _state["loop"] = asyncio.new_event_loop()
    stop = threading.Event()
    sweeper = threading.Thread(target=_sweeper, args=(gateway, stop), daemon=True)
    sweeper.start()
    q = rq_queue(settings.redis_url, settings.queue_name)
    asked_to_stop = threading.Event()
    while not asked_to_stop.is_set():
        # RQ's work() returns (it does not raise) when Redis goes away mid-loop: only a signal
        # (or burst mode) ends this worker; anything else reconnects, the database keeps the work.
        worker = None
        try:
            worker = SimpleWorker([q], connection=q.connection)  # talks to Redis already
            worker.work(burst=burst, logging_level="WARNING")
            if burst or getattr(worker, "_shutdown_requested_date", None) is not None:
                break
            log.warning("worker lost Redis; reconnecting")
        except Exception as exc:
            log.warning("worker lost Redis (%s); reconnecting", exc)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: asked_to_stop.set())
        asked_to_stop.wait(2)
    stop.set()
    # The adapters' HTTP sessions belong to the job loop: closed there, not left to the collector.
    loop = _state["loop"]
    loop.run_until_complete(gateway.close())  # type: ignore[attr-defined]
    loop.close()  # type: ignore[attr-defined]


__all__ = ["deliver_job", "run_worker"]
