"""SQLite: a transaction holds an flock beside the database, so writers in other processes wait
in the kernel (woken at once) rather than in SQLite's sleep-and-retry busy handler."""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import exc

from store.db import Database, make_engine


def _lock_is_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also lets go of a lock taken just above
    return True


@pytest.fixture
def database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'gateway.sqlite3'}")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    yield db
    db.close()


def _lock_path(tmp_path: Path) -> Path:
    return tmp_path / "gateway.sqlite3-writer.lock"


def test_a_transaction_holds_the_lock_until_commit(database: Database, tmp_path: Path) -> None:
    assert _lock_is_free(_lock_path(tmp_path))
    with database.session() as session:
        session.connection().exec_driver_sql("INSERT INTO t VALUES (1)")
        assert not _lock_is_free(_lock_path(tmp_path))
    assert _lock_is_free(_lock_path(tmp_path))


def test_a_transaction_lets_go_of_the_lock_on_rollback(database: Database, tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), database.session() as session:
        session.connection().exec_driver_sql("INSERT INTO t VALUES (1)")
        1 / 0
    assert _lock_is_free(_lock_path(tmp_path))
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 0
        conn.rollback()
    assert _lock_is_free(_lock_path(tmp_path))


def test_a_second_transaction_in_the_same_thread_fails_at_once(database: Database) -> None:
    """It would wait on itself forever; SQLite's own busy timeout would take 30 s to say so."""
    started = time.monotonic()
    with database.session() as session:
        session.connection().exec_driver_sql("INSERT INTO t VALUES (1)")
        with pytest.raises(exc.OperationalError, match="already has a transaction open"):
            with database.engine.begin() as other:
                other.exec_driver_sql("INSERT INTO t VALUES (2)")
    assert time.monotonic() - started < 5
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT x FROM t").scalars().all() == [1]
        conn.rollback()


def test_a_writer_in_another_process_waits_for_the_commit(database: Database, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
    writer = ("import sys; from store.db import make_engine\n"
              "engine = make_engine(sys.argv[1])\n"
              "with engine.begin() as conn:\n"
              "    conn.exec_driver_sql('INSERT INTO t VALUES (2)')\n")
    with database.session() as session:
        session.connection().exec_driver_sql("INSERT INTO t VALUES (1)")
        other = subprocess.Popen([sys.executable, "-c", writer, url], cwd=Path(__file__).parents[2])
        time.sleep(1.0)
        assert other.poll() is None, "the other process wrote while this transaction was open"
    assert other.wait(timeout=30) == 0
    with make_engine(url).connect() as conn:
        assert conn.exec_driver_sql("SELECT x FROM t ORDER BY rowid").scalars().all() == [1, 2]
        conn.rollback()
