"""Worker processes: read jobs, stream replies with the companion core, persist, ack."""
