"""Background download of Telegram media (photos, documents, voice notes) into the file store.

Runs in the server process (``BACKGROUND`` in gateway/app.py): the webhook wakes it after
persisting an update with files; a periodic sweep catches up after a restart. Downloads go
through the adapter (``getFile`` + the Bot API file URL); nothing is exposed by a public URL.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from channels.telegram.adapter import FileTooLarge, TelegramAdapter
from conversations.chat_media import FileJob, claim_files, record_failed, record_stored, record_too_big
from conversations.messages import PermanentDeliveryError, TransientDeliveryError
from gateway.context import Gateway
from gateway.http import GATEWAY
from gateway.webhooks_telegram import FETCHER

log = logging.getLogger(__name__)


class MediaFetcher:
    def __init__(self, gateway: Gateway, adapter: TelegramAdapter, concurrency: int = 4,
                 idle_poll: float = 5.0) -> None:
        self.gateway = gateway
        self.adapter = adapter
        self.concurrency = concurrency
        self.idle_poll = idle_poll
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="telegram-media")

    async def run_once(self) -> int:
        core = self.gateway.core
        jobs = await core.db.run(claim_files, core, self.concurrency)
        await asyncio.gather(*(self._fetch(job) for job in jobs))
        return len(jobs)

    async def _fetch(self, job: FileJob) -> None:
        core = self.gateway.core
        db = core.db
        try:
            fetched = await self.adapter.fetch_file(job.file_id)
        except FileTooLarge as exc:
            ids = await db.run(record_too_big, core, job, exc.size)
            core.outbox_committed(ids)
        except TransientDeliveryError as exc:
            await db.run(lambda: record_failed(core, job, exc.reason, transient=True, retry_after=exc.retry_after))
        except PermanentDeliveryError as exc:
            log.info("telegram file %s cannot be fetched: %s", job.id, exc.reason)
            await db.run(lambda: record_failed(core, job, exc.reason, transient=False))
        except Exception as exc:  # a bug must not lose the file: retried, then given up
            log.exception("telegram file %s: unexpected error", job.id)
            await db.run(lambda: record_failed(core, job, f"{type(exc).__name__}: {exc}", transient=True))
        else:
            await db.run(record_stored, core, job, fetched.data, fetched.file_path)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                self._wake.clear()
                if await self.run_once():
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.idle_poll)
                except asyncio.TimeoutError:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:  # the database being away must not kill the fetcher
                log.exception("telegram media fetcher failed; retrying")
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()


async def start(app: web.Application) -> None:
    gw = app[GATEWAY]
    adapter = gw.adapters.get("telegram")
    if not isinstance(adapter, TelegramAdapter) or adapter.sandbox:
        return  # sandbox: files stay recorded as pending until a bot token is configured
    fetcher = MediaFetcher(gw, adapter)
    fetcher.start()
    gw.extras[FETCHER] = fetcher


async def stop(app: web.Application) -> None:
    fetcher = app[GATEWAY].extras.pop(FETCHER, None)
    if fetcher is not None:
        await fetcher.stop()
