"""The companion core, shared by `grizz ask`, the app and the server's workers.

Persona, context assembly within a token budget, memory tools, the provider
client and `ChatSession` (persist → stream → persist).

Must not import: textual, rich, the CLI or the app.
"""
