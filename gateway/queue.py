"""The Redis/RQ delivery backend: the queue carries outbox ids only; the database is the truth."""
from __future__ import annotations

import asyncio
import logging
import queue as stdqueue
import threading
import time
import uuid

from redis import Redis
from rq import Queue

from conversations.delivery import Delivery

log = logging.getLogger(__name__)

JOB = "gateway.worker.deliver_job"


def rq_queue(redis_url: str, name: str) -> Queue:
    return Queue(name, connection=Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5))


# Ids per job: a worker claims a job's ids in one transaction and sends them concurrently, so
# RQ's own per-job cost is paid once per batch, not per message. That cost is large: about 20
# Redis commands and RQ's bookkeeping, some 7 ms of a worker's CPU (bench: 10.9 ms a message
# with one id a job, 1.5 ms with 25).
JOB_BATCH = 25
# How long the enqueue thread waits for more ids before enqueueing what it has: briefly while
# the workers keep up (the queue is empty), longer while jobs already wait for a worker, since
# a new job would wait behind them anyway; fewer, fuller jobs then leave the workers more CPU.
ENQUEUE_LINGER = 0.005
BUSY_LINGER = 0.03


def enqueue_ids(q: Queue, ids: list[int] | tuple[int, ...], batch: int = JOB_BATCH) -> None:
    """One pipeline round trip; each job carries up to ``batch`` ids."""
    ids = list(ids)
    chunks = [ids[i:i + batch] for i in range(0, len(ids), batch)]
    jobs = [Queue.prepare_data(JOB, args=tuple(chunk), job_id=f"outbox-{chunk[0]}-{uuid.uuid4().hex[:8]}",
                               result_ttl=0, failure_ttl=3600, timeout=120) for chunk in chunks]
    if jobs:
        q.enqueue_many(jobs)


class QueueSweeper:
    """Puts back on the queue what the database says is due but the queue does not hold: rows
    never enqueued, enqueued long ago, held by a dead worker, or lost with a Redis restart
    (noticed by Redis's ``run_id`` changing, or by Redis having been unreachable)."""

    def __init__(self, queue: Queue, delivery: Delivery) -> None:
        self.queue = queue
        self.delivery = delivery
        self.run_id: str | None = None
        self.lost_contact = False

    def sweep_sync(self) -> int:
        try:
            run_id = str(self.queue.connection.info("server").get("run_id"))
        except Exception:
            self.lost_contact = True
            raise
        if self.lost_contact or (self.run_id is not None and run_id != self.run_id):
            log.warning("Redis was restarted or unreachable: re-enqueueing every due outbox row")
            self.delivery.forget_enqueued_sync()
        self.run_id, self.lost_contact = run_id, False
        ids = self.delivery.stale_for_queue_sync()
        if ids:
            try:
                enqueue_ids(self.queue, ids)
            except Exception:
                self.lost_contact = True
                self.delivery.forget_enqueued_sync(ids)
                raise
        return len(ids)


class RQBackend:
    """Enqueues committed outbox ids from a background thread (Redis being slow or away never
    blocks a webhook), and sweeps the outbox for anything that was not enqueued or got lost."""

    def __init__(self, redis_url: str, queue_name: str, delivery: Delivery, sweep_every: float = 1.0) -> None:
        self.queue = rq_queue(redis_url, queue_name)
        self.delivery = delivery
        self.sweep_every = sweep_every
        self._pending: stdqueue.Queue[tuple[int, ...] | None] = stdqueue.Queue()
        self._thread = threading.Thread(target=self._enqueue_loop, name="rq-enqueue", daemon=True)
        self._task: asyncio.Task[None] | None = None

    def notify(self, ids: tuple[int, ...]) -> None:
        self._pending.put(ids)

    def _enqueue_loop(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            batch = list(item)
            deadline = time.monotonic() + (BUSY_LINGER if self._workers_busy() else ENQUEUE_LINGER)
            while len(batch) < 500:
                try:
                    more = self._pending.get(timeout=max(0.0, deadline - time.monotonic()))
                except stdqueue.Empty:
                    break
                if more is None:
                    self._pending.put(None)
                    break
                batch.extend(more)
            try:
                enqueue_ids(self.queue, batch)
            except Exception as exc:  # Redis away: the sweeper re-enqueues from the database later
                log.warning("could not enqueue %d outbox ids (%s); the sweeper will", len(batch), exc)

    def _workers_busy(self) -> bool:
        try:
            return bool(self.queue.count)
        except Exception:  # noqa: BLE001  (Redis away: the enqueue that follows says so)
            return False

    async def _sweep(self) -> None:
        sweeper = QueueSweeper(self.queue, self.delivery)
        while True:
            try:
                await asyncio.to_thread(sweeper.sweep_sync)
                await self.delivery.core.db.run(self.delivery.due_count_sync)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox sweep failed: %s", exc)
            await asyncio.sleep(self.sweep_every)

    def start(self) -> None:
        self.delivery.core.add_outbox_listener(self.notify)
        self._thread.start()
        self._task = asyncio.create_task(self._sweep(), name="outbox-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._pending.put(None)
        await asyncio.to_thread(self._thread.join, 10)
