"""Sync with grizz-server: the connection (`client`), the outbox push and
cursor pull (`engine`), what the device remembers about it (`state`), and
`grizz ask` through the server (`ask`).

Sits between the CLI/ask and the store; never loads Textual.
"""
