"""The migrated schema is the models' schema: every table and column the code reads or writes
exists, with the type the models give it, on both databases."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import store.all_models  # noqa: F401  (every table in the metadata)


def test_migrations_give_the_models_schema(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    # Indexes only the migrations create (full-text search, partial indexes for the console and
    # the benchmarks' queries) are not in the models: that difference is intended.
    assert [d for d in differences if d[0] != "remove_index"] == []
