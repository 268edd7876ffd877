"""Engine and sessions; the gateway picks the driver from a plain URL."""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

T = TypeVar("T")


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` get the psycopg 3 driver; ``sqlite:///`` stays."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class _LockedSQLiteConnection(sqlite3.Connection):
    """A SQLite connection whose transactions also hold an exclusive ``flock`` on a file beside
    the database (``lock_path``), taken before ``BEGIN IMMEDIATE`` and let go after COMMIT or
    ROLLBACK.

    SQLite makes a second writer wait by sleeping and retrying (1, 2, 5 ... 100 ms between
    tries), so with several processes on one database (``serve --processes N``, a command run
    beside the server) a waiting writer sleeps on long after the lock is free, and waiters are
    not served in any order. The kernel wakes a process blocked on ``flock`` as soon as the
    holder lets go.
    """

    lock_path = ""
    _fd: int | None = None
    _held = False

    def lock_for_write(self) -> None:
        if _LOCK_HOLDERS.get(self.lock_path) == threading.get_ident():
            # Blocking would wait on this very thread forever (SQLite itself would time out).
            raise sqlite3.OperationalError("database is locked: this thread already has a transaction open")
        if self._fd is None:
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        _LOCK_HOLDERS[self.lock_path] = threading.get_ident()
        self._held = True

    def unlock_unless_in_transaction(self) -> None:
        if self._held and not self.in_transaction:
            self._forget_lock()
            fcntl.flock(self._fd, fcntl.LOCK_UN)  # type: ignore[arg-type]

    def _forget_lock(self) -> None:
        self._held = False
        _LOCK_HOLDERS.pop(self.lock_path, None)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.unlock_unless_in_transaction()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.unlock_unless_in_transaction()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._held:
                self._forget_lock()
            if self._fd is not None:
                os.close(self._fd)  # lets go of the flock too
                self._fd = None


# lock file -> the thread of this process that holds it (one at most: flocks taken through
# different descriptors exclude each other within a process too).
_LOCK_HOLDERS: dict[str, int] = {}


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args: dict[str, object] = {"check_same_thread": False, "timeout": 30}
        if parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri"):
            lock_path = str(Path(parsed.database).resolve()) + "-writer.lock"
            connect_args["factory"] = type("LockedSQLiteConnection", (_LockedSQLiteConnection,),
                                           {"lock_path": lock_path})
        engine = create_engine(url, connect_args=connect_args)
        event.listen(engine, "connect", _sqlite_pragmas)

        # SQLite's deferred BEGIN lets two writers deadlock on upgrade; take the write lock up front.
        @event.listens_for(engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            locked = conn.connection.dbapi_connection
            if not isinstance(locked, _LockedSQLiteConnection):  # in memory, or a URI: no lock file
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            try:
                locked.lock_for_write()
            except sqlite3.OperationalError as error:
                raise OperationalError("BEGIN IMMEDIATE", None, error) from error
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                locked.unlock_unless_in_transaction()
                raise

        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: object, _record: object) -> None:
            dbapi_conn.isolation_level = None  # type: ignore[attr-defined]
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


class Database:
    """Synchronous SQLAlchemy behind a small thread pool, usable from asyncio and from RQ jobs.

    SQLite gets one writer thread (it serialises writes anyway, and this avoids busy waits);
    PostgreSQL gets a few.
    """

    def __init__(self, url: str) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._executor = ThreadPoolExecutor(max_workers=1 if self.is_sqlite else 8, thread_name_prefix="db")

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def autocommit(self) -> Connection:
        """A connection without a transaction around its statements, each committed on its own:
        for work done in one statement, which then costs one round trip, not three."""
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run blocking database work off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.engine.dispose()
