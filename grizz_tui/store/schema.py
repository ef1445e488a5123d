"""Names of the schema migrations, without importing sqlite-utils.

`store.db` compares these with the applied ones to decide, cheaply, whether
`store.migrations` (and sqlite-utils) must be loaded at all. A test checks this
list matches the migrations registered in `store.migrations`.
"""

MIGRATION_SET = "grizz"
MIGRATION_NAMES: tuple[str, ...] = (
    "m001_create_tables",
    "m002_add_search",
    "m003_add_attachments",
    "m004_add_sync_bookkeeping",
    "m005_add_pending_sends",
)
