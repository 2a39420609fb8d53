"""Writing a chunk of households the ledger has no occurrences for yet (a first plan):
plain inserts, without the upserts' ``ON CONFLICT``, and on PostgreSQL with ``COPY``.

The rows are exactly those the upserts would have inserted, with the ids they would have
had: the occurrences' ids are taken first (PostgreSQL: from the table's sequence; SQLite:
after the largest, under the write lock the planner's transaction holds), so the
deliveries can refer to them without reading them back. Another planner that wrote the
chunk meanwhile makes a key conflict: everything is undone to a savepoint and the caller
plans the chunk again with the upserts (see :meth:`scheduler.ledger.plans.Plans.insert_new`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Connection, Table, func, select, text

from scheduler.ledger.rows import Base, UTCDateTime

__all__ = ["DELIVERY", "OCCURRENCE", "copy_rows", "insert_rows", "new_ids"]

OCCURRENCE = Base.metadata.tables["occurrence"]
DELIVERY = Base.metadata.tables["delivery"]
_NONE = object()  # no value seen yet


def new_ids(connection: Connection, table: Table, count: int) -> list[int]:
    """`count` ids for new rows of `table`, in the order the rows will be written."""
    if connection.dialect.name == "postgresql":
        taken = connection.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
            ),
            {"table": table.name, "n": count},
        )
        return sorted(taken.scalars())
    # SQLite gives a new row the largest id plus one; the planner's transaction began with
    # BEGIN IMMEDIATE, so no other writer can take these meanwhile.
    largest = connection.execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(largest + 1, largest + 1 + count))


def insert_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """A plain ``executemany`` INSERT of tuples, the values converted by the columns'
    SQLAlchemy types' own bind processors (what an ``insert(table)`` would send, without
    its work per row and column around them)."""
    columns = list(rows[0])
    dialect = connection.dialect
    processors = [
        (index, process)
        for index, name in enumerate(columns)
        if (process := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    get = itemgetter(*columns)
    values = []
    # (value, converted) last seen in each converted column: most rows share one instant
    # (`now`, as created_at and updated_at), converted once.
    last: list[tuple[object, Any]] = [(_NONE, None)] * len(processors)
    for row in rows:
        row_values = list(get(row))
        for position, (index, process) in enumerate(processors):
            value = row_values[index]
            seen, converted = last[position]
            if value is not seen:
                converted = process(value)
                last[position] = (value, converted)
            row_values[index] = converted
        values.append(tuple(row_values))
    names = ", ".join(f'"{name}"' for name in columns)
    marks = ", ".join("?" * len(columns))
    connection.exec_driver_sql(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', values)


def copy_rows(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """The rows with psycopg's binary ``COPY ... FROM STDIN``: the values as the columns'
    SQLAlchemy types would send them (aware instants as naive UTC; JSON through psycopg's
    own JSON dumper, which SQLAlchemy's psycopg dialect uses too)."""
    columns = list(rows[0])
    names = ", ".join(f'"{name}"' for name in columns)
    types = [_type_name(connection, table, name) for name in columns]
    from psycopg.types.json import Json  # imported only where PostgreSQL is used

    raw = connection.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN (FORMAT BINARY)') as copy,
    ):
        copy.set_types(types)
        for values in _values(table, columns, rows, Json(None)):
            copy.write_row(values)


def _type_name(connection: Connection, table: Table, column: str) -> str:
    """The column's PostgreSQL type, as psycopg names it: ``varchar``, ``timestamp ...``."""
    compiled: str = table.c[column].type.compile(dialect=connection.dialect)
    return compiled.lower().split("(")[0]


def _values(
    table: Table, columns: list[str], rows: Sequence[dict[str, Any]], json_null: object
) -> Iterator[list[Any]]:
    get = itemgetter(*columns)
    kinds = [table.c[name].type for name in columns]
    instants = [i for i, kind in enumerate(kinds) if isinstance(kind, UTCDateTime)]
    # SQLAlchemy writes None in a JSON column as JSON's null, not SQL's NULL (the column's
    # none_as_null is off): so does this.
    documents = [
        i for i, kind in enumerate(kinds) if isinstance(kind, JSON) and not kind.none_as_null
    ]
    last: list[tuple[object, Any]] = [(_NONE, None)] * len(instants)  # as in insert_rows
    for row in rows:
        values = list(get(row))
        for position, index in enumerate(instants):
            value = values[index]
            seen, converted = last[position]
            if value is not seen:
                converted = None if value is None else _naive_utc(value)
                last[position] = (value, converted)
            values[index] = converted
        for index in documents:
            if values[index] is None:
                values[index] = json_null
        yield values


def _naive_utc(value: datetime) -> datetime:
    """What :class:`UTCDateTime` stores: the instant in UTC, naive; a naive one is refused."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: the ledger stores aware UTC instants")
    return value.astimezone(UTC).replace(tzinfo=None)
