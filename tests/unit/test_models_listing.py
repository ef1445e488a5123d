"""`OpenAICompatProvider.models()`: the endpoint's `GET /v1/models`, over both
transports, against the fake server on a real socket."""

from __future__ import annotations

import socket

import pytest

from grizz_core.errors import GrizzError
from grizz_core.providers.openai_compat import OpenAICompatProvider, model_ids
from tests.fakes.openai_server import FakeOpenAI


@pytest.fixture(params=["httpx", "aiohttp"])
def http(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def listed(base_url: str, http: str) -> list[str]:
    provider = OpenAICompatProvider(
        base_url=base_url, model="m", api_key="k", timeout=5, http=http
    )
    try:
        return await provider.models()
    finally:
        await provider.aclose()


async def test_lists_the_endpoint_models_sorted(fake_openai: FakeOpenAI, http: str):
    fake_openai.models = ["qwen2.5:7b", "llama3.2", "llama3.2"]
    assert await listed(fake_openai.base_url, http) == ["llama3.2", "qwen2.5:7b"]


async def test_no_list_is_an_empty_list(fake_openai: FakeOpenAI, http: str):
    fake_openai.models = None  # the route answers 404
    assert await listed(fake_openai.base_url, http) == []


async def test_unreachable_is_one_clear_error(http: str):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(GrizzError) as caught:
        await listed(f"http://127.0.0.1:{port}/v1", http)
    assert "\n" not in str(caught.value)


def test_odd_bodies_give_no_models():
    assert model_ids({"data": [{"id": "a"}, {"name": "b"}, "c", {"id": 3}]}) == ["a"]
    assert model_ids([]) == [] and model_ids({"data": {}}) == []
