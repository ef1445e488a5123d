"""The local SQLite store: schema, migrations and queries.

Only `store.db` opens connections. Functions take a `store.db.Database` and
return frozen dataclasses from `store.models`, never rows.

Must not import: textual, httpx, rich, the core or the provider.
"""
