"""Many-row writes prepared before a transaction and run in it as one prepared statement.

Django's ``bulk_update`` builds one ``CASE WHEN pk=… THEN …`` per field over the whole batch,
and ``bulk_create`` builds a model instance per row and compiles them: for a chunk of 500
desired-state envelopes that Python work took most of the chunk's write transaction, the
time every heartbeat waits on SQLite. Here each row's values are converted as the fields
save them (UUIDs, JSON) when prepared, outside any transaction, and the transaction runs
one ``executemany`` (psycopg pipelines it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections, models, router


@dataclass(frozen=True)
class RowWrites:
    """One statement and each row's parameters, by the row's key."""

    using: str
    sql: str
    rows: dict[Any, list[Any]]

    def run(self, keys: Iterable[Any] | None = None) -> int:
        """Writes the rows (only those of ``keys`` when given) in the caller's transaction;
        returns how many rows were sent."""
        chosen = list(self.rows.values()) if keys is None else [self.rows[k] for k in keys]
        if chosen:
            with connections[self.using].cursor() as cursor:
                cursor.executemany(self.sql, chosen)
        return len(chosen)


def prepare_updates(
    model: type[models.Model], fields: Sequence[str], rows: Iterable[tuple[Any, Sequence[Any]]]
) -> RowWrites:
    """``UPDATE … SET fields WHERE pk = …`` for each ``(pk, values)``, values in ``fields``'
    order, keyed by pk. No signals, no ``auto_now``."""
    using = router.db_for_write(model)
    connection = connections[using]
    columns = [_concrete(model, name) for name in fields]
    key, key_column = _concrete(model, model._meta.pk.name)
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column)} = %s" for _, column in columns)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(key_column)} = %s"
    return RowWrites(
        using,
        sql,
        {
            pk: [*_converted(columns, values, connection), key.get_db_prep_save(pk, connection)]
            for pk, values in rows
        },
    )


def prepare_upserts(
    model: type[models.Model],
    fields: Sequence[str],
    unique: Sequence[str],
    rows: Iterable[tuple[Any, Sequence[Any]]],
) -> RowWrites:
    """``INSERT … ON CONFLICT (unique) DO UPDATE`` of the other fields, for each
    ``(key, values)`` (values in ``fields``' order; ``unique`` is a subset of ``fields``).
    SQLite and PostgreSQL both speak this."""
    using = router.db_for_write(model)
    connection = connections[using]
    columns = [_concrete(model, name) for name in fields]
    quote = connection.ops.quote_name
    names = [quote(column) for _, column in columns]
    conflict = [quote(_concrete(model, name)[1]) for name in unique]
    updated = [name for name in names if name not in conflict]
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))}) ON CONFLICT ({', '.join(conflict)}) "
        f"DO UPDATE SET {', '.join(f'{name} = excluded.{name}' for name in updated)}"
    )
    return RowWrites(
        using, sql, {key: list(_converted(columns, values, connection)) for key, values in rows}
    )


def _converted(
    columns: list[tuple[models.Field[Any, Any], str]], values: Sequence[Any], connection: Any
) -> list[Any]:
    return [
        field.get_db_prep_save(value, connection)
        for (field, _), value in zip(columns, values, strict=True)
    ]


def _concrete(model: type[models.Model], name: str) -> tuple[models.Field[Any, Any], str]:
    """The field called ``name`` and its column; refuses a reverse relation and the like."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or field.column is None:
        raise TypeError(f"{model.__name__}.{name} is not a column to write")
    return field, field.column
