"""Fetching one IMAP mailbox folder (aioimaplib): IDLE with a polling fallback, exactly once.

The position is a checkpoint (UIDVALIDITY, last UID handled), kept by the caller's store
(the database). After any outage the fetcher asks for every UID above the checkpoint — no
"last N" or "since" window — and hands each message, in UID order, to the handler; the
checkpoint moves past a message only once the handler has stored it (or dead-lettered it).
A crash between the two re-delivers one message, which the handler's deduplication on
Message-ID absorbs. When UIDVALIDITY changes (the folder was recreated), the whole folder is
read again, with the same deduplication.

Messages stay on the server: they are flagged ``\\Seen`` (and optionally moved to a folder).
This module does no business logic and no database work: both come in as callables.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import aioimaplib

log = logging.getLogger(__name__)

T = TypeVar("T")
HandlerOutcome = Literal["stored", "dead_letter"]
# (uidvalidity, uid, raw bytes) -> outcome; raising means "try again later" (the checkpoint stays).
Handler = Callable[[int, int, bytes], Awaitable[HandlerOutcome]]

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_ATOM_SAFE = re.compile(r"^[A-Za-z0-9_.\-/&,+]+$")


class ImapError(Exception):
    """The server refused a command (login, select …); the fetcher reconnects with backoff."""


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    last_uid: int


class CheckpointStore(Protocol):
    async def load(self) -> Checkpoint | None: ...

    async def save(self, checkpoint: Checkpoint) -> None: ...


def imap_utf7(name: str) -> str:
    """A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3): ``Traités`` -> ``Trait&AOk-s``."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + encoded.replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if ch == "&":
            flush()
            out.append("&-")
        elif 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append(ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def _mailbox_arg(name: str) -> str:
    encoded = imap_utf7(name)
    return encoded if _ATOM_SAFE.match(encoded) else aioimaplib.quoted(encoded)


def _ok(response: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if response.result != "OK":
        detail = b" ".join(line for line in response.lines if isinstance(line, bytes))[:200]
        raise ImapError(f"{what} failed: {response.result} {detail.decode('utf-8', 'replace')}")
    return response


def _search_uids(response: aioimaplib.Response) -> list[int]:
    uids: list[int] = []
    for line in response.lines:
        if not isinstance(line, (bytes, bytearray)):
            continue
        text = bytes(line).decode("ascii", "replace").strip()
        if text.upper().startswith("SEARCH"):
            text = text[6:].strip()
        if text and all(part.isdigit() for part in text.split()):
            uids.extend(int(part) for part in text.split())
    return uids


def _literal(response: aioimaplib.Response) -> bytes | None:
    for line in response.lines:
        if isinstance(line, bytearray):
            return bytes(line)
    return None


class ImapFetcher:
    """Runs forever (``start``/``stop``), or once (``fetch_once``) for a manual sync."""

    def __init__(self, *, host: str, port: int | None, user: str, password: str, tls: bool, folder: str,
                 store: CheckpointStore, handler: Handler, move_to: str | None = None, poll_seconds: float = 60.0,
                 idle: bool = True, timeout: float = 30.0, backoff_initial: float = 1.0,
                 backoff_max: float = 300.0) -> None:
        self.host = host
        self.port = port or (993 if tls else 143)
        self.user = user
        self.password = password
        self.tls = tls
        self.folder = folder
        self.move_to = move_to
        self.poll_seconds = poll_seconds
        self.idle = idle
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.store = store
        self.handler = handler
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._waiting = False
        self._client: aioimaplib.IMAP4 | None = None
        self._lost = asyncio.Event()
        self.connected = asyncio.Event()
        self.syncs = 0  # completed synchronisations (tests and health checks read it)
        self.connections = 0

    # -- one connection ----------------------------------------------------------------------
    async def _connect(self) -> aioimaplib.IMAP4:
        if self.tls:
            client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(host=self.host, port=self.port, timeout=self.timeout,
                                                             ssl_context=ssl.create_default_context())
        else:
            client = aioimaplib.IMAP4(host=self.host, port=self.port, timeout=self.timeout)
        self._client = client
        self._lost = asyncio.Event()
        client.protocol.conn_lost_cb = self._connection_lost
        await client.wait_hello_from_server()
        _ok(await client.login(self.user, self.password), "LOGIN")
        if self.move_to:
            await client.create(_mailbox_arg(self.move_to))  # "already exists" is fine
        return client

    def _connection_lost(self, exc: Exception | None) -> None:
        """Wake an IDLE or poll wait at once instead of when it times out."""
        self._lost.set()
        client = self._client
        if client is not None and client.protocol is not None:
            client.protocol.idle_queue.put_nowait(aioimaplib.STOP_WAIT_SERVER_PUSH)

    async def _select(self, client: aioimaplib.IMAP4) -> int:
        response = _ok(await client.select(_mailbox_arg(self.folder)), f"SELECT {self.folder}")
        for line in response.lines:
            if isinstance(line, (bytes, bytearray)):
                match = _UIDVALIDITY.search(bytes(line))
                if match:
                    return int(match.group(1))
        raise ImapError(f"SELECT {self.folder}: the server sent no UIDVALIDITY")

    async def sync(self, client: aioimaplib.IMAP4) -> int:
        """Hand every message above the checkpoint to the handler; returns how many."""
        uidvalidity = await self._select(client)
        checkpoint = await self.store.load()
        last = 0
        if checkpoint is not None and checkpoint.uidvalidity == uidvalidity:
            last = checkpoint.last_uid
        elif checkpoint is not None:
            log.warning("IMAP folder %s: UIDVALIDITY changed (%s -> %s); reading the whole folder again "
                        "(messages already stored are recognised by Message-ID)", self.folder,
                        checkpoint.uidvalidity, uidvalidity)
        response = _ok(await client.uid_search("UID", f"{last + 1}:*", charset=None), "UID SEARCH")
        # "n:*" always includes the highest UID, even below n: filter.
        uids = sorted(uid for uid in set(_search_uids(response)) if uid > last)
        done = 0
        for uid in uids:
            if self._stopping:
                break
            fetched = _ok(await client.uid("fetch", str(uid), "(UID BODY.PEEK[])"), f"UID FETCH {uid}")
            raw = _literal(fetched)
            if raw is None:
                log.info("IMAP folder %s: UID %s vanished before it could be fetched", self.folder, uid)
            else:
                outcome = await self.handler(uidvalidity, uid, raw)
                if outcome == "stored":
                    await self._file_away(client, uid)
            await self.store.save(Checkpoint(uidvalidity, uid))
            done += 1
        if checkpoint is None or checkpoint.uidvalidity != uidvalidity:
            if not uids:  # remember the folder's identity even when it is empty
                await self.store.save(Checkpoint(uidvalidity, last))
        self.syncs += 1
        return done

    async def _file_away(self, client: aioimaplib.IMAP4, uid: int) -> None:
        """Flag as seen and optionally move; a failure here is logged, the message is stored anyway."""
        try:
            _ok(await client.uid("store", str(uid), "+FLAGS.SILENT", "(\\Seen)"), f"UID STORE {uid}")
            if self.move_to:
                if client.has_capability("MOVE"):
                    _ok(await client.uid("move", str(uid), _mailbox_arg(self.move_to)), f"UID MOVE {uid}")
                else:
                    _ok(await client.uid("copy", str(uid), _mailbox_arg(self.move_to)), f"UID COPY {uid}")
                    _ok(await client.uid("store", str(uid), "+FLAGS.SILENT", "(\\Deleted)"), f"UID STORE {uid}")
                    if client.has_capability("UIDPLUS"):
                        await client.uid("expunge", str(uid))
        except (ImapError, aioimaplib.Abort) as exc:
            log.warning("IMAP: could not flag or move UID %s: %s", uid, exc)

    async def _until_lost(self, awaitable: Awaitable[T], what: str) -> T:
        """``awaitable``, unless the connection drops or the server does not answer in time."""
        work = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({work, lost}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if work not in done:
            work.cancel()
            raise ConnectionError(f"{what}: the IMAP connection was lost or timed out")
        return work.result()

    async def _wait_for_news(self, client: aioimaplib.IMAP4) -> None:
        self._waiting = True
        try:
            if self.idle and client.has_capability("IDLE"):
                idle = await self._until_lost(client.idle_start(timeout=self.poll_seconds), "IDLE")
                try:
                    await client.wait_server_push(timeout=self.poll_seconds + self.timeout)
                except asyncio.TimeoutError:
                    pass
                if self._lost.is_set():
                    idle.cancel()
                    raise ConnectionError("the IMAP server closed the connection")
                client.idle_done()
                await asyncio.wait_for(idle, timeout=self.timeout)
            else:
                try:
                    await asyncio.wait_for(self._lost.wait(), timeout=self.poll_seconds)
                except asyncio.TimeoutError:
                    pass
                if self._lost.is_set():
                    raise ConnectionError("the IMAP server closed the connection")
                _ok(await client.noop(), "NOOP")
        finally:
            self._waiting = False

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            protocol = client.protocol
            if (protocol is not None and protocol.transport is not None and not self._waiting
                    and not protocol.has_pending_idle_command() and client.get_state() in ("AUTH", "SELECTED")):
                await asyncio.wait_for(client.logout(), timeout=2)
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass
        finally:
            transport = client.protocol.transport if client.protocol is not None else None
            if transport is not None:
                transport.close()

    async def fetch_once(self) -> int:
        """Connect, synchronise, disconnect."""
        try:
            client = await self._connect()
            return await self.sync(client)
        finally:
            await self._close()

    # -- forever -----------------------------------------------------------------------------
    async def run(self) -> None:
        delay = self.backoff_initial
        while not self._stopping:
            try:
                client = await self._connect()
                self.connected.set()
                self.connections += 1
                log.info("IMAP: connected to %s:%s, folder %s", self.host, self.port, self.folder)
                while not self._stopping:
                    await self.sync(client)
                    delay = self.backoff_initial
                    if self._stopping:
                        break
                    await self._wait_for_news(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the mailbox being away must not stop the gateway
                if self._stopping:
                    break
                log.warning("IMAP: %s: %s; reconnecting in %.1fs", type(exc).__name__, exc, delay)
            finally:
                self.connected.clear()
                await self._close()
            if self._stopping:
                break
            self._waiting = True
            try:
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            finally:
                self._waiting = False
            delay = min(delay * 2, self.backoff_max)

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self.run(), name="imap-fetcher")

    async def stop(self, grace: float = 15.0) -> None:
        """Stop after the message in hand (if any) is stored; idle waits are interrupted at once."""
        self._stopping = True
        task, self._task = self._task, None
        if task is None:
            return
        if self._waiting or task.done():
            task.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=grace)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        except Exception:  # noqa: BLE001
            pass
        await self._close()
