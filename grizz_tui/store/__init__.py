"""The local SQLite store: schema, migrations and queries.

Only `store.db` opens connections. Functions take a `sqlite_utils.Database` and
return frozen dataclasses from `store.models`, never rows.

Must not import: textual, httpx, rich, the core or the provider.
"""
