"""Who answers: the OpenAI-compatible HTTP client (httpx for devices, aiohttp
for the server's workers) and the built-in local llama.cpp model.

Must not import: the companion, a store, the UI, the server.
"""
