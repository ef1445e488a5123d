"""The fake provider speaks the protocol the real `openai` SDK expects.

Our provider talks raw HTTP (for start-up speed), so these tests pin the fake
to the reference client: if the fake drifted from what OpenAI-compatible
servers send, the SDK would reject it here.
"""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes.openai_server import FakeOpenAI, HttpError, Text, ToolCalls


def client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="sk-x", max_retries=0)


def test_sdk_streams_text_and_usage(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(Text("Hi there, I'm Grizz", chunk=5))
    stream = client(fake_openai).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hi there, I'm Grizz"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15


def test_sdk_reassembles_tool_call_deltas(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(ToolCalls([("remember", {"content": "birthday is 3 May"})]))
    stream = client(fake_openai).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    args, name = "", ""
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            name += call.function.name or ""
            args += call.function.arguments or ""
    assert name == "remember"
    assert json.loads(args) == {"content": "birthday is 3 May"}


def test_sdk_sees_http_errors(fake_openai: FakeOpenAI) -> None:
    fake_openai.enqueue(HttpError(401, "bad key"))
    with pytest.raises(openai.AuthenticationError):
        client(fake_openai).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
