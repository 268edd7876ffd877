"""Test databases: SQLite files and a PostgreSQL database per test session, migrated once.

PostgreSQL runs at 127.0.0.1:5432 (trust auth). Under ``CI=true`` an unreachable service is a
failure, never a skip.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import SQLModel

import store.all_models  # noqa: F401
from store.migrate import upgrade

PG_ADMIN_URL = os.environ.get("GATEWAY_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def service_missing(what: str, exc: BaseException) -> None:
    """Skip locally, fail under CI."""
    message = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if IN_CI:
        pytest.fail(message + " — under CI=true a missing service is a failure", pytrace=False)
    pytest.skip(message)


def create_pg_database() -> str:
    name = f"gw_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def truncate_all(url: str) -> None:
    engine = create_engine(url)
    try:
        tables = [t.name for t in SQLModel.metadata.sorted_tables]
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


class SqliteTemplate:
    """One migrated SQLite file per session, copied for each test (migrations run once)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "template.sqlite3"
        upgrade(f"sqlite:///{self.path}")

    def fresh(self, target: Path) -> str:
        shutil.copyfile(self.path, target)
        return f"sqlite:///{target}"
