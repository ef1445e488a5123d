"""The Redis Streams job queue (`jobs.py`) and its Lua transitions (`scripts.py`)."""
