"""Hot-path helpers: SQLAlchemy Core statements inside an ORM session.

The ORM unit of work costs about four times a Core statement per row (object bookkeeping,
flush planning); on the ingest and delivery paths that dominated the CPU profile. These helpers
insert with one cached Core statement and, where callers need an ORM object, attach the row's
object to the session as persistent, so later attribute changes are still flushed as UPDATEs.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.sql import Executable
from sqlmodel import Session, SQLModel

M = TypeVar("M", bound=SQLModel)

_INSERTS: dict[tuple[str, str, tuple[str, ...]], Any] = {}


def _insert(table: Table, dialect: Any, unless_taken: tuple[str, ...] = ()) -> Any:
    """``INSERT ... RETURNING id``; with ``unless_taken`` (the columns of a unique index), a row
    that would break that index is skipped (``ON CONFLICT DO NOTHING``) and no id returned."""
    key = (dialect.name, table.name, unless_taken)
    stmt = _INSERTS.get(key)
    if stmt is None:
        if unless_taken:
            if dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            else:
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            stmt = dialect_insert(table).on_conflict_do_nothing(index_elements=list(unless_taken))
        else:
            stmt = insert(table)
        stmt = _INSERTS[key] = stmt.returning(table.c.id)
    return stmt


def execute(session: Session, stmt: Executable, params: dict[str, Any] | list[dict[str, Any]] | None = None) -> Any:
    """Run a Core statement on the session's connection, after flushing pending ORM changes
    (the autoflush an ORM query would do), so reads see this transaction's writes."""
    session.flush()
    return session.connection().execute(stmt, params)


def insert_row(session: Session, table: Table, values: dict[str, Any]) -> int:
    """INSERT one row (every column given, defaults included) and return its id."""
    row_id = insert_row_unless_taken(session, table, values, ())
    assert row_id is not None
    return row_id


def insert_row_unless_taken(session: Session, table: Table, values: dict[str, Any],
                            unique: tuple[str, ...]) -> int | None:
    """:func:`insert_row`, but None (nothing written) when a row already has these values of the
    ``unique`` columns (a unique index): one statement instead of a lookup and an INSERT."""
    conn = session.connection()
    prepared = _prepared_insert(conn, table, tuple(values), returning=True, unless_taken=unique)
    if prepared is None:
        found = conn.execute(_insert(table, conn.dialect, unique), values).scalar()
    else:
        found = prepared(conn, [values])[0]
    return int(found) if found is not None else None


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT rows that all give the same columns (every column, defaults included), in one call."""
    if not rows:
        return
    conn = session.connection()
    prepared = _prepared_insert(conn, table, tuple(rows[0]), returning=False)
    if prepared is None:
        conn.execute(insert(table), rows)
    else:
        prepared(conn, rows)


_Runner = Callable[[Connection, list[dict[str, Any]]], list[Any]]
_PREPARED: dict[tuple[str, str, tuple[str, ...], bool, tuple[str, ...]], _Runner | None] = {}


def _prepared_insert(conn: Connection, table: Table, keys: tuple[str, ...], *, returning: bool,
                     unless_taken: tuple[str, ...] = ()) -> _Runner | None:
    """The INSERT for exactly these columns, compiled once, run on the DBAPI cursor.

    SQLAlchemy spends about three times the database's own time per statement on execution
    bookkeeping (compile cache lookup, parameter and result setup, events); this applies the
    same bind processors (UTC datetimes, JSON) to a statement compiled once per dialect and
    column set. None when the statement needs anything more (e.g. a column default to compute).
    With ``returning`` it runs one row and returns ``[id]`` (``[None]`` when ``unless_taken``
    skipped it); without, it runs them all (executemany).
    """
    dialect = conn.dialect
    key = (dialect.name, table.name, keys, returning, unless_taken)
    if key in _PREPARED:
        return _PREPARED[key]
    stmt = _insert(table, dialect, unless_taken) if returning else insert(table)
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    names = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
    runner: _Runner | None = None
    if set(names) <= set(keys) and not compiled.literal_execute_params and not compiled.post_compile_params:
        sql = compiled.string
        processors = compiled._bind_processors  # noqa: SLF001  (SQLAlchemy's own, so values match)
        # Only the columns with a processor are processed; a None is passed as it is to those
        # whose processor maps None to None (datetimes), as the processor would have returned it.
        processed = [(i, fn, not _keeps_none(fn)) for i, name in enumerate(names)
                     if (fn := processors.get(name)) is not None]
        positional = compiled.positional
        error = dialect.loaded_dbapi.Error

        def bind(values: dict[str, Any]) -> Any:
            out = [values[name] for name in names]
            for i, fn, even_none in processed:
                value = out[i]
                if value is not None or even_none:
                    out[i] = fn(value)
            return tuple(out) if positional else dict(zip(names, out))

        def runner(conn: Connection, rows: list[dict[str, Any]]) -> list[Any]:
            params = [bind(values) for values in rows]
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                if returning:
                    cursor.execute(sql, params[0])
                    row = cursor.fetchone()
                    return [row[0] if row is not None else None]
                cursor.executemany(sql, params)
                return []
            except error as exc:
                raise DBAPIError.instance(sql, params, exc, error, dialect=dialect) from exc
            finally:
                cursor.close()

    _PREPARED[key] = runner
    return runner


def _keeps_none(processor: Callable[[Any], Any]) -> bool:
    try:
        return processor(None) is None
    except Exception:  # noqa: BLE001  (then it is given every value, None included)
        return False


_DEFAULTS: dict[type, list[tuple[str, Any, bool]]] = {}


def _defaults(model: type[SQLModel]) -> list[tuple[str, Any, bool]]:
    found = _DEFAULTS.get(model)
    if found is None:
        found = []
        for name, info in model.model_fields.items():
            if info.default_factory is not None:
                found.append((name, info.default_factory, True))
            elif not info.is_required():
                found.append((name, info.default, False))
        _DEFAULTS[model] = found
    return found


def new(session: Session, model: type[M], **values: Any) -> M:
    """``session.add(model(**values)); session.flush()`` for a new row, at a fraction of the cost.

    The model's field defaults are applied as its constructor would, the row is written with
    one Core INSERT, and the object is built the way the ORM builds a loaded row (no
    ``__init__``), then attached to ``session`` as persistent: later changes are flushed as UPDATEs.
    """
    obj = new_unless_taken(session, model, (), **values)
    assert obj is not None
    return obj


def new_unless_taken(session: Session, model: type[M], unique: tuple[str, ...], **values: Any) -> M | None:
    """:func:`new`, but None (nothing written) when a row already has these values of the
    ``unique`` columns."""
    row: dict[str, Any] = {}
    for name, default, factory in _defaults(model):
        if name not in values:
            row[name] = default() if factory else default
    row.update(values)
    table: Table = model.__table__  # type: ignore[attr-defined]
    if row.get("id") is None:
        row.pop("id", None)
    session.flush()
    row_id = insert_row_unless_taken(session, table, row, unique)
    if row_id is None:
        return None
    row["id"] = row_id
    return loaded(session, model, row)


def loaded(session: Session, model: type[M], values: dict[str, Any]) -> M:
    """The ORM object of a row read with Core (``values``: every column): the one ``session``
    already holds for that id, or a new persistent one built as the ORM builds a loaded row."""
    mapper = model.__mapper__  # type: ignore[attr-defined]
    if not mapper.configured:  # no ORM query may have run yet in this process
        configure_mappers()
    existing = session.identity_map.get(mapper.identity_key_from_primary_key([values["id"]]))
    if existing is not None:
        return existing  # type: ignore[no-any-return]
    obj: M = mapper.class_manager.new_instance()
    obj.__dict__.update(values)
    make_transient_to_detached(obj)
    session.add(obj)
    return obj
