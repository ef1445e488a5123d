"""The per-model capability table the client builds its requests from."""

from __future__ import annotations

import pytest

from grizz_core.providers.capabilities import REASONING, USUAL, capabilities_of


@pytest.mark.parametrize(
    "model",
    ["o1", "o1-mini", "o3", "o3-mini", "o4-mini", "gpt-5", "gpt-5-nano", "GPT-5"],
)
def test_openai_reasoning_models(model: str) -> None:
    accepts = capabilities_of(model)
    assert accepts is REASONING
    assert accepts.tokens_field == "max_completion_tokens" and not accepts.temperature


@pytest.mark.parametrize(
    "model",
    ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "llama3.2", "qwen2.5:0.5b", "omni", ""],
)
def test_every_other_model_keeps_the_usual_request(model: str) -> None:
    accepts = capabilities_of(model)
    assert accepts is USUAL
    assert accepts.tokens_field == "max_tokens" and accepts.temperature
