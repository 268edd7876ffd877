"""Hot-path helpers: SQLAlchemy Core statements inside an ORM session.

The ORM unit of work costs about four times a Core statement per row (object bookkeeping,
flush planning); on the ingest and delivery paths that dominated the CPU profile. These helpers
insert with one cached Core statement and, where callers need an ORM object, attach the row's
object to the session as persistent, so later attribute changes are still flushed as UPDATEs.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, bindparam, insert, select, union_all, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
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


class Rows(list):  # type: ignore[type-arg]
    """What :func:`query` returns: the result rows as tuples, and the statement's column keys."""

    keys: tuple[str, ...] = ()

    def scalar(self) -> Any:
        """The first column of the first row (None without rows)."""
        return self[0][0] if self else None

    def mapping(self) -> dict[str, Any] | None:
        """The first row by column key (None without rows)."""
        return dict(zip(self.keys, self[0])) if self else None


def query(session: Session, stmt: Executable, params: dict[str, Any]) -> Rows:
    """Run a SELECT built once (a module-level statement: it is compiled once per dialect and
    kept) on the session's connection, after flushing pending ORM changes (the autoflush an ORM
    query would do), so it sees this transaction's writes. It runs on the DBAPI cursor with
    SQLAlchemy's own bind and result processors: the rows are what SQLAlchemy would return,
    without its execution bookkeeping (about 40 microseconds a statement)."""
    session.flush()
    conn = session.connection()
    runner = _kept_runner(conn, stmt, tuple(params), "all")
    if runner is not None:
        return runner(conn, [params])  # type: ignore[no-any-return]
    result = conn.execute(stmt, params)
    rows = Rows(tuple(row) for row in result)
    rows.keys = tuple(result.keys())
    return rows


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
        row = prepared(conn, [values])[0]
        found = row[0] if row is not None else None
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


Chain = list[tuple[Table, dict[str, Any], dict[str, int]]]


def insert_chain(session: Session, rows: Chain) -> list[int]:
    """INSERT rows in order and return their ids. Each row is (table, values, links): ``links``
    maps a column to the index of an earlier row, whose id it gets; ``values`` give every other
    column. PostgreSQL writes them all in one statement (data-modifying WITHs), a round trip for
    each row fewer; elsewhere one INSERT each."""
    conn = session.connection()
    prepared = None
    if conn.dialect.name == "postgresql":
        prepared = _prepared_chain(conn, tuple((table, tuple(values), tuple(links.items()))
                                               for table, values, links in rows))
    if prepared is None:
        ids: list[int] = []
        for table, values, links in rows:
            ids.append(insert_row(session, table, {**values, **{column: ids[i] for column, i in links.items()}}))
        return ids
    flat = {f"r{i}_{k}": v for i, (_, values, _) in enumerate(rows) for k, v in values.items()}
    return [int(row_id) for row_id in prepared(conn, [flat])[0]]


def insert_with_children_unless_taken(session: Session, parent: Table, parent_values: dict[str, Any],
                                      unique: tuple[str, ...], child: Table, children: list[dict[str, Any]],
                                      link: str, pointing: tuple[tuple[Table, int], ...] = ()) -> int | None:
    """:func:`insert_row_unless_taken` for ``parent``, then ``children`` (rows of ``child`` giving
    the same columns) pointing at it through ``link``, and the existing rows ``pointing`` (table,
    id) made to point at it through their own ``link`` column; None, and nothing written, when the
    parent is taken. PostgreSQL does it all in one statement (data-modifying WITHs); elsewhere one
    statement each."""
    conn = session.connection()
    prepared = None
    if conn.dialect.name == "postgresql" and children:
        prepared = _prepared_family(conn, parent, tuple(parent_values), unique, child,
                                    tuple(k for k in children[0] if k != link), len(children), link,
                                    tuple(table for table, _ in pointing))
    if prepared is None:
        parent_id = insert_row_unless_taken(session, parent, parent_values, unique)
        if parent_id is not None:
            insert_rows(session, child, [{**values, link: parent_id} for values in children])
            for table, row_id in pointing:
                _run(conn, _point(table, link), {"row": row_id, "to": parent_id})
        return parent_id
    values = {f"p_{k}": v for k, v in parent_values.items()}
    for i, row in enumerate(children):
        values.update({f"c{i}_{k}": v for k, v in row.items() if k != link})
    values.update({f"u{i}": row_id for i, (_, row_id) in enumerate(pointing)})
    found = prepared(conn, [values])[0]
    return int(found[0]) if found is not None else None


_POINT: dict[tuple[str, str], Any] = {}


def _point(table: Table, link: str) -> Any:
    """``UPDATE table SET <link> = :to WHERE id = :row``, built once."""
    stmt = _POINT.get((table.name, link))
    if stmt is None:
        stmt = _POINT[(table.name, link)] = (update(table).where(table.c.id == bindparam("row"))
                                             .values({link: bindparam("to")}))
    return stmt


_Runner = Callable[[Connection, list[dict[str, Any]]], list[Any]]
_PREPARED: dict[tuple[Any, ...], _Runner | None] = {}


_KEPT: dict[tuple[Any, ...], tuple[Any, _Runner | None]] = {}
# A caller that built a new statement on every call would fill the cache: past this many
# statements, new ones are left to SQLAlchemy.
_KEPT_LIMIT = 512


def _kept_runner(conn: Connection, stmt: Any, keys: tuple[str, ...], mode: str) -> _Runner | None:
    """The DBAPI runner (:func:`_dbapi_runner`) of a statement its caller built once and keeps,
    compiled on first use; None when SQLAlchemy must run it. Cached with the statement itself, so
    its id cannot come to name another statement."""
    key = (conn.dialect.name, id(stmt), keys, mode)
    cached = _KEPT.get(key)
    if cached is not None:
        return cached[1]
    if len(_KEPT) >= _KEPT_LIMIT:
        return None
    runner = _dbapi_runner(conn, stmt.compile(dialect=conn.dialect), keys, mode=mode)
    _KEPT[key] = (stmt, runner)
    return runner


def _run(conn: Connection, stmt: Any, values: dict[str, Any]) -> None:
    """Run a statement built once and kept (e.g. by :func:`_point`), with no result, on the DBAPI
    cursor when it can."""
    runner = _kept_runner(conn, stmt, tuple(values), "many")
    if runner is None:
        conn.execute(stmt, values)
    else:
        runner(conn, [values])


def _prepared_insert(conn: Connection, table: Table, keys: tuple[str, ...], *, returning: bool,
                     unless_taken: tuple[str, ...] = ()) -> _Runner | None:
    """The INSERT for exactly these columns, compiled once, run on the DBAPI cursor.

    SQLAlchemy spends about three times the database's own time per statement on execution
    bookkeeping (compile cache lookup, parameter and result setup, events); this applies the
    same bind processors (UTC datetimes, JSON) to a statement compiled once per dialect and
    column set. None when the statement needs anything more (e.g. a column default to compute).
    With ``returning`` it runs one row and returns ``[(id,)]`` (``[None]`` when ``unless_taken``
    skipped it); without, it runs them all (executemany).
    """
    key = (conn.dialect.name, table.name, keys, returning, unless_taken)
    if key not in _PREPARED:
        stmt = _insert(table, conn.dialect, unless_taken) if returning else insert(table)
        _PREPARED[key] = _dbapi_runner(conn, stmt.compile(dialect=conn.dialect, column_keys=list(keys)), keys,
                                       mode="one" if returning else "many")
    return _PREPARED[key]


def _prepared_family(conn: Connection, parent: Table, parent_keys: tuple[str, ...], unique: tuple[str, ...],
                     child: Table, child_keys: tuple[str, ...], count: int, link: str,
                     pointing: tuple[Table, ...]) -> _Runner | None:
    """``WITH p AS (INSERT INTO parent ... ON CONFLICT DO NOTHING RETURNING id), u0 AS (UPDATE
    pointing[0] SET <link> = p.id FROM p WHERE id = ...) ... INSERT INTO child SELECT p.id, ... FROM p
    UNION ALL ... RETURNING child.<link>`` for ``count`` children, compiled once; values named
    ``p_<column>``, ``c<i>_<column>`` and ``u<i>``. When the parent is taken, p is empty: nothing
    else is written and no row comes back."""
    key = ("family", conn.dialect.name, parent.name, parent_keys, unique, child.name, child_keys, count, link,
           tuple(table.name for table in pointing))
    if key not in _PREPARED:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        written = (pg_insert(parent).values({k: bindparam(f"p_{k}", type_=parent.c[k].type) for k in parent_keys})
                   .on_conflict_do_nothing(index_elements=list(unique)).returning(parent.c.id).cte("p"))
        rows = [select(written.c.id, *(bindparam(f"c{i}_{k}", type_=child.c[k].type) for k in child_keys))
                for i in range(count)]
        stmt = insert(child).from_select([link, *child_keys], rows[0] if count == 1 else union_all(*rows)
                                         ).returning(child.c[link])
        if pointing:
            stmt = stmt.add_cte(*(
                update(table).where(table.c.id == bindparam(f"u{i}", type_=table.c.id.type))
                .values({link: written.c.id}).cte(f"u{i}") for i, table in enumerate(pointing)))
        _PREPARED[key] = _dbapi_runner(
            conn, stmt.compile(dialect=conn.dialect),
            tuple(f"p_{k}" for k in parent_keys) + tuple(f"c{i}_{k}" for i in range(count) for k in child_keys)
            + tuple(f"u{i}" for i in range(len(pointing))), mode="one")
    return _PREPARED[key]


def _prepared_chain(conn: Connection, rows: tuple[tuple[Table, tuple[str, ...], tuple[tuple[str, int], ...]], ...]
                    ) -> _Runner | None:
    """``WITH r0 AS (INSERT INTO t0 ... RETURNING id), r1 AS (INSERT INTO t1 SELECT ..., r0.id FROM r0
    RETURNING id), ... SELECT r0.id, r1.id, ...`` for rows (table, value columns, links),
    compiled once; values named ``r<i>_<column>``."""
    key = ("chain", conn.dialect.name, tuple((table.name, keys, links) for table, keys, links in rows))
    if key not in _PREPARED:
        written: list[Any] = []
        for i, (table, keys, links) in enumerate(rows):
            values = [bindparam(f"r{i}_{k}", type_=table.c[k].type) for k in keys]
            if links:
                stmt = insert(table).from_select([*keys, *(column for column, _ in links)],
                                                 select(*values, *(written[j].c.id for _, j in links)))
            else:
                stmt = insert(table).values(dict(zip(keys, values)))
            written.append(stmt.returning(table.c.id).cte(f"r{i}"))
        _PREPARED[key] = _dbapi_runner(conn, select(*(cte.c.id for cte in written)).compile(dialect=conn.dialect),
                                       tuple(f"r{i}_{k}" for i, (_, keys, _) in enumerate(rows) for k in keys),
                                       mode="one")
    return _PREPARED[key]


def _dbapi_runner(conn: Connection, compiled: Any, keys: tuple[str, ...], *, mode: str) -> _Runner | None:
    """Runs ``compiled`` on the DBAPI cursor with SQLAlchemy's own bind processors: ``mode`` "one"
    runs one row of values and returns its first result row (or None), "many" runs them all
    (executemany) and returns nothing, "all" runs one row and returns :class:`Rows` (every result
    row, through SQLAlchemy's result processors). Values are named by ``keys``; parameters with a
    value of their own (``literal()``) keep it. None when the statement needs more than that."""
    dialect = conn.dialect
    names = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
    if (compiled.literal_execute_params or compiled.post_compile_params or compiled.insert_prefetch
            or compiled.update_prefetch):  # values to render or compute on each execution
        return None
    fixed: dict[str, Any] = {}
    for name in set(names) - set(keys):
        param = compiled.binds.get(name)
        if param is None or param.required or param.callable is not None:
            return None
        fixed[name] = param.value
    sql = compiled.string
    positional = compiled.positional
    new_cursor: Callable[[Any], Any] = lambda dbapi_connection: dbapi_connection.cursor()  # noqa: E731
    if dialect.driver == "psycopg" and not positional:
        # psycopg parses a ``%(name)s`` statement on every execution when it is long or has many
        # parameters (its cache stops at 4 KB and 50 parameters: a new complaint's statement has
        # 55, about 0.1 ms a message); numbered once here, a RawCursor sends it as it is.
        import psycopg

        sql, names = _numbered(sql)
        positional, new_cursor = True, lambda dbapi_connection: psycopg.RawCursor(dbapi_connection)
    processors = compiled._bind_processors  # noqa: SLF001  (SQLAlchemy's own, so values match)
    # Only the columns with a processor are processed; a None is passed as it is to those
    # whose processor maps None to None (datetimes), as the processor would have returned it.
    processed = [(i, fn, not _keeps_none(fn)) for i, name in enumerate(names)
                 if (fn := processors.get(name)) is not None]
    columns = compiled._result_columns if mode == "all" else []  # noqa: SLF001  (SQLAlchemy's own)
    result_keys = tuple(column.keyname for column in columns)
    # The result processors, chosen as SQLAlchemy chooses them (by the type codes of the first
    # result's columns), so the rows match.
    converted: list[tuple[int, Callable[[Any], Any]]] | None = None
    error = dialect.loaded_dbapi.Error

    def bind(values: dict[str, Any]) -> Any:
        if fixed:
            values = {**fixed, **values}
        out = [values[name] for name in names]
        for i, fn, even_none in processed:
            value = out[i]
            if value is not None or even_none:
                out[i] = fn(value)
        return tuple(out) if positional else dict(zip(names, out))

    def runner(conn: Connection, rows: list[dict[str, Any]]) -> list[Any]:
        params = [bind(values) for values in rows]
        cursor = new_cursor(conn.connection.dbapi_connection)
        try:
            if mode == "many":
                cursor.executemany(sql, params)
                return []
            cursor.execute(sql, params[0])
            if mode == "one":
                return [cursor.fetchone()]
            found = Rows(cursor.fetchall())
            nonlocal converted
            if converted is None:
                codes = [entry[1] for entry in cursor.description or ()]
                converted = [(i, fn) for i, (column, code) in enumerate(zip(columns, codes))
                             if (fn := column.type._cached_result_processor(dialect, code)) is not None]  # noqa: SLF001
        except error as exc:
            raise DBAPIError.instance(sql, params, exc, error, dialect=dialect) from exc
        finally:
            cursor.close()
        if converted:
            for i, row in enumerate(found):
                values = list(row)
                for j, fn in converted:
                    values[j] = fn(values[j])
                found[i] = tuple(values)
        found.keys = result_keys
        return found

    return runner


_PYFORMAT = re.compile(r"%\(([^)]+)\)s|%%")


def _numbered(sql: str) -> tuple[str, list[str]]:
    """A ``%(name)s`` statement (``%%`` a literal ``%``) with ``$1``, ``$2``... instead, and the
    parameter names in that order (a name used twice keeps its number)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PYFORMAT.sub(number, sql), names


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
    table = model.__table__  # type: ignore[attr-defined]
    return _new(session, model, values, lambda row: insert_row_unless_taken(session, table, row, unique))


def new_with_children_unless_taken(session: Session, model: type[M], unique: tuple[str, ...],
                                   values: dict[str, Any], child: Table, children: list[dict[str, Any]],
                                   link: str, pointing: tuple[SQLModel, ...] = ()) -> M | None:
    """:func:`new_unless_taken`, with ``children`` (rows of ``child``, every column but ``link``
    and the id given) pointing at the new row, and the objects ``pointing`` (persistent, with a
    ``link`` attribute) made to point at it: written by :func:`insert_with_children_unless_taken`."""
    table = model.__table__  # type: ignore[attr-defined]
    pointed = tuple((type(obj).__table__, obj.id) for obj in pointing)  # type: ignore[attr-defined]
    created = _new(session, model, values, lambda row: insert_with_children_unless_taken(
        session, table, row, unique, child, children, link, pointed))
    if created is not None:
        for obj in pointing:
            set_committed_value(obj, link, created.id)  # type: ignore[attr-defined]
    return created


def _new(session: Session, model: type[M], values: dict[str, Any],
         write: Callable[[dict[str, Any]], int | None]) -> M | None:
    """The object of a new row written by ``write`` (which returns its id, or None when it wrote nothing)."""
    row = _row(model, values)
    session.flush()
    row_id = write(row)
    if row_id is None:
        return None
    row["id"] = row_id
    return loaded(session, model, row)


def new_chain(session: Session, rows: list[tuple[type[SQLModel], dict[str, Any], dict[str, int]]]
              ) -> list[SQLModel]:
    """:func:`new` for rows (model, values, links) written by :func:`insert_chain` (one statement
    on PostgreSQL): each ``links`` column gets the id of the earlier row it names."""
    full = [_row(model, values) for model, values, _ in rows]
    for row, (_, _, links) in zip(full, rows):
        for column in links:
            row.pop(column, None)
    session.flush()
    ids = insert_chain(session, [(model.__table__, row, links)  # type: ignore[attr-defined]
                                 for row, (model, _, links) in zip(full, rows)])
    objects = []
    for row, (model, _, links), row_id in zip(full, rows, ids):
        row.update({column: ids[i] for column, i in links.items()})
        row["id"] = row_id
        objects.append(loaded(session, model, row))
    return objects


def _row(model: type[SQLModel], values: dict[str, Any]) -> dict[str, Any]:
    """Every column of a new row: the model's field defaults, as its constructor applies them,
    then ``values`` (no id, unless one is given)."""
    row: dict[str, Any] = {}
    for name, default, factory in _defaults(model):
        if name not in values:
            row[name] = default() if factory else default
    row.update(values)
    if row.get("id") is None:
        row.pop("id", None)
    return row


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
