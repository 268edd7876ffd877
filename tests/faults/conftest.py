"""Fixtures of the fault suite, and the ledger summary printed at the end of the run."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.harness import LEDGERS, PrivatePostgres, PrivateRedis, ThreadedFakeTwilio
from tests.support.db import create_pg_database, drop_pg_database, service_missing
from tests.support.processes import processes  # noqa: F401


@pytest.fixture
def provider() -> Iterator[ThreadedFakeTwilio]:
    """The fake Twilio, on its own event loop in a thread (outside the gateway and the load)."""
    fake = ThreadedFakeTwilio().start()
    yield fake
    fake.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(tmp_path_factory.mktemp("pg") / "cluster")
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def shared_pg_url() -> Iterator[str]:
    """A database of this test's own on the machine's PostgreSQL, migrated."""
    from store.migrate import upgrade

    try:
        url = create_pg_database()
    except Exception as exc:  # noqa: BLE001
        service_missing("PostgreSQL at 127.0.0.1:5432", exc)
    upgrade(url)
    yield url
    drop_pg_database(url)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if LEDGERS:
        terminalreporter.section("fault ledger")
        for line in LEDGERS:
            terminalreporter.write_line(line)
