"""The companion: a chat session (persist → stream → persist), context within
a token budget, Grizz's persona, the memory tools and the `ChatStore` port the
device's and the server's stores implement.

Must not import: a concrete store, the UI, the server.
"""
