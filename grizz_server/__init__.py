"""grizz-server: the sync server (gateway, Redis Streams job queue, workers, store).

Importing this package loads nothing heavy; the CLI imports each part lazily.
Must not import: textual.
"""

__version__ = "0.1.0"
