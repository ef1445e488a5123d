"""A freshly migrated server database equals the schema `schema.py` declares.

The migrations create the tables; `grizz_server/store/schema.py` declares
them for the queries. Reflecting a migrated database (SQLite and PostgreSQL)
must give back exactly the declared tables, columns (type, nullability,
server default), primary keys, unique constraints, indexes and foreign keys,
so neither can drift from the other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, inspect
from sqlalchemy.engine import Connection, Dialect

from grizz_server.store import ServerStore
from grizz_server.store.migrations import schema_migrations
from grizz_server.store.schema import metadata

Shape = dict[str, Any]


def _default(text: Any) -> str | None:
    """A server default as both dialects spell it: `'0'::bigint` -> `0`."""
    if text is None:
        return None
    text = str(text)
    if text.startswith("nextval("):  # a PostgreSQL serial: no declared default
        return None
    return text.split("::")[0].strip("'")


def _declared(table: Table, dialect: Dialect) -> Shape:
    return {
        "columns": [
            (
                c.name,
                c.type.compile(dialect=dialect),
                c.nullable,
                _default(c.server_default.arg) if c.server_default else None,  # type: ignore[attr-defined]
            )
            for c in table.columns
        ],
        "primary_key": [c.name for c in table.primary_key.columns],
        "unique": sorted([c.name] for c in table.columns if c.unique),
        "indexes": sorted(
            (i.name, [c.name for c in i.columns], bool(i.unique)) for i in table.indexes
        ),
        "foreign_keys": sorted(
            (
                [c.name for c in fk.columns],
                fk.referred_table.name,
                [e.column.name for e in fk.elements],
            )
            for fk in table.foreign_key_constraints
        ),
    }


def _migrated(sync: Connection, name: str) -> Shape:
    found = inspect(sync)
    return {
        "columns": [
            (
                c["name"],
                c["type"].compile(dialect=sync.dialect),
                c["nullable"],
                _default(c.get("default")),
            )
            for c in found.get_columns(name)
        ],
        "primary_key": found.get_pk_constraint(name)["constrained_columns"],
        "unique": sorted(u["column_names"] for u in found.get_unique_constraints(name)),
        "indexes": sorted(
            (i["name"], i["column_names"], bool(i["unique"]))
            for i in found.get_indexes(name)
            if "duplicates_constraint" not in i  # PostgreSQL's unique constraints
        ),
        "foreign_keys": sorted(
            (f["constrained_columns"], f["referred_table"], f["referred_columns"])
            for f in found.get_foreign_keys(name)
        ),
    }


def _compare(sync: Connection) -> None:
    declared = {**metadata.tables, schema_migrations.name: schema_migrations}
    assert sorted(inspect(sync).get_table_names()) == sorted(declared)
    for name, table in declared.items():
        assert _migrated(sync, name) == _declared(table, sync.dialect), name


async def test_a_migrated_database_equals_the_declared_schema(
    store: ServerStore,
) -> None:
    async with store._backend.read() as conn:
        await conn.run_sync(_compare)
