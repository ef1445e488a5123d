"""The WebSocket gateway: auth, limits, admission, live fan-out, health, metrics."""
