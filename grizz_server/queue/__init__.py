"""The Redis Streams job queue, split by who uses it.

`jobs.py` (ids, jobs, attempts, the Redis client), `pipeline.py` (script calls
batched per event-loop turn, one per process, shared by the roles),
`admission.py` (the gateway), `leases.py` (the workers), `admin.py` (the CLI
and the health check), and the Lua transitions they call (`scripts.py`).
"""
