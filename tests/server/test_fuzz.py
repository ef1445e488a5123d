"""Property-based fuzzing of frames sent to a live gateway over a real socket.

Whatever a device sends, the gateway answers with well-formed frames (an
`error` with a known code when the input is wrong), keeps the connection
open, and leaves every user's stored data intact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from grizz_core import protocol as p
from grizz_server.settings import ServerSettings
from tests.server.conftest import Stack, start_stack, stop_stack

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
ids = st.sampled_from(
    ["", "not-a-uuid", "6f1d4f8e-3a57-4d0e-9b8a-4b1f0c6a9e21"]
) | st.uuids().map(str)
frames = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            [
                "send",
                "resume",
                "push",
                "pull",
                "ping",
                "hello",
                "done",
                "welcome",
                "",
                "x",
            ]
        )
    },
    optional={
        "text": st.text(max_size=60) | json_values,
        "ref": st.text(max_size=80),
        "message_id": ids | json_values,
        "job_id": ids,
        "after": st.integers() | st.sampled_from(["0", "1-0", "abc"]),
        "limit": st.integers(),
        "changes": st.lists(json_values, max_size=3) | json_values,
        "tz": st.text(max_size=20),
        "day": st.text(max_size=12),
        "token": st.text(max_size=20),
    },
)
raw_frames = (
    frames.map(json.dumps) | json_values.map(json.dumps) | st.text(max_size=200)
)


class LiveServer:
    """The server stack on its own event loop in a thread (for sync tests)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.stack: Stack = self.run(start_stack(settings, workers=0))

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self.run(stop_stack(self.stack))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def live(server_settings: ServerSettings, provider_env: Any) -> Iterator[LiveServer]:
    settings = dataclasses.replace(
        server_settings,
        max_queue_depth=100_000,
        max_active_per_user=100_000,
        rate_burst=100_000,
        rate_per_minute=1e9,
        max_message_chars=50,
    )
    server = LiveServer(settings)
    try:
        yield server
    finally:
        server.close()


def _exchange(ws: ClientConnection, raw: str, sentinel: str) -> list[p.Frame]:
    """Send `raw` then a ping; return every frame received up to the pong."""
    ws.send(raw)
    ws.send(p.dump_frame(p.Ping(ref=sentinel)))
    seen: list[p.Frame] = []
    while True:
        frame = p.parse_frame(ws.recv(timeout=10), allowed=p.SERVER_FRAMES)
        if isinstance(frame, p.Pong) and frame.ref == sentinel:
            return seen
        seen.append(frame)


@pytest.mark.slow
def test_fuzzed_frames_get_clear_answers_and_change_nothing_else(
    live: LiveServer,
) -> None:
    stack = live.stack
    bob_store = stack.store.for_user(stack.user_ids["bob"])
    alice_store = stack.store.for_user(stack.user_ids["alice"])
    with connect(
        stack.url, additional_headers={"Authorization": f"Bearer {stack.tokens['bob']}"}
    ) as bob:
        bob.recv(timeout=10)  # welcome
        _exchange(bob, p.dump_frame(p.Send(text="bob's diary")), "setup")
        bob_before = live.run(bob_store.pull(0, 1000))
        with connect(
            stack.url,
            additional_headers={"Authorization": f"Bearer {stack.tokens['alice']}"},
        ) as ws:
            ws.recv(timeout=10)  # welcome
            counter = iter(range(10**9))

            @settings(
                max_examples=150,
                deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture],
            )
            @given(raw=raw_frames)
            def fuzz(raw: str) -> None:
                for frame in _exchange(ws, raw, f"s{next(counter)}"):
                    if isinstance(frame, p.Error):
                        assert frame.code in p.ERROR_CODES
                        assert frame.message and "\n" not in frame.message
                        assert "Traceback" not in frame.message

            fuzz()
        assert live.run(bob_store.pull(0, 1000)) == bob_before
        changes, _, _ = live.run(alice_store.pull(0, 10_000))
        for change in changes:  # whatever alice stored is hers and well-formed
            assert change["entity"] in ("conversations", "messages", "memory")
