"""grizz_core: the kernel both apps share — errors, the domain, the wire
protocol, the companion (session, context, persona, memory tools) and the
providers (OpenAI-compatible, the built-in local model).

Nothing here is UI- or server-specific. Must not import: textual, rich,
redis, sqlalchemy, sqlite_utils, websockets, keyring, grizz_tui, grizz_server
(the import-linter contracts in pyproject.toml say so, and CI checks them).
"""
