"""`grizz ask` in-process (CliRunner): exit codes, stdout and stderr separately."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grizz_core import paths
from grizz_tui.cli import app
from grizz_tui.store.db import Database, open_database
from tests.fakes.openai_server import FakeOpenAI, HttpError, RawSSE, Text


def grizz(*args: str, input: str | bytes | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), input=input)


def stored(db_path: Path | None = None) -> list[dict[str, object]]:
    db: Database = open_database(db_path or paths.db_path())
    return list(db.query("SELECT role, content, status FROM messages ORDER BY rowid"))


def test_reply_goes_to_stdout_raw(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(Text("# Hi\n\n- honey\n- salmon\n", chunk=3))
    result = grizz("ask", "how", "are", "you?")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "# Hi\n\n- honey\n- salmon\n"
    assert result.stderr == ""
    assert stored() == [
        {"role": "user", "content": "how are you?", "status": "complete"},
        {
            "role": "assistant",
            "content": "# Hi\n\n- honey\n- salmon\n",
            "status": "complete",
        },
    ]


def test_arguments_then_stdin(provider_env: FakeOpenAI) -> None:
    result = grizz("ask", "summarise this", input="line one\nline two\n")
    assert result.exit_code == 0
    sent = provider_env.requests[0]["messages"][-1]["content"]
    assert sent == "summarise this\n\nline one\nline two"


def test_stdin_only(provider_env: FakeOpenAI) -> None:
    result = grizz("ask", input="just stdin")
    assert result.exit_code == 0
    assert provider_env.requests[0]["messages"][-1]["content"] == "just stdin"


@pytest.mark.parametrize("stdin", ["", "   \n\n"])
def test_empty_prompt_is_usage_error(provider_env: FakeOpenAI, stdin: str) -> None:
    result = grizz("ask", input=stdin)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("grizz: No prompt")
    assert provider_env.requests == []


def test_json_output(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(Text("Hello!"))
    result = grizz("ask", "--json", "hi")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["reply"] == "Hello!" and data["status"] == "complete"
    assert data["finish_reason"] == "stop" and data["model"] == "fake-model"
    assert data["usage"]["total_tokens"] == 15
    assert set(data["timing"]) == {"elapsed_s", "first_token_s"}
    assert data["conversation_id"] and data["message_id"] and data["user_message_id"]


def test_json_error_object(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(HttpError(500, "kaput", times=10))
    result = grizz("ask", "--json", "hi")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert "kaput" in data["error"] and data["exit_code"] == 1


def test_no_stream(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(Text("whole"))
    result = grizz("ask", "--no-stream", "hi")
    assert (result.exit_code, result.stdout) == (
        0,
        "whole\n",
    )  # issue 13: raw output ends its line
    assert "stream" not in provider_env.requests[0]


def test_missing_key_for_openai_is_exit_3() -> None:
    result = grizz("ask", "hi")
    assert result.exit_code == 3
    assert "No API key" in result.stderr and "\n" not in result.stderr.strip()


def test_rejected_key_is_exit_3(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(HttpError(401, "Incorrect API key"))
    result = grizz("ask", "hi")
    assert result.exit_code == 3 and "rejected the API key" in result.stderr
    assert stored()[0]["content"] == "hi"  # the question is kept


def test_malformed_sse_is_exit_1(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(RawSSE(["data: {{{"]))
    result = grizz("ask", "hi")
    assert result.exit_code == 1
    assert (
        result.stderr.startswith("grizz: The provider at")
        and "malformed" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_oversized_stdin_is_refused_not_truncated(provider_env: FakeOpenAI) -> None:
    result = grizz("ask", "--json", input="x" * 1_000_001)
    assert result.exit_code == 2
    assert "larger than 1,000,000 bytes" in json.loads(result.stdout)["error"]
    assert provider_env.requests == [] and not paths.db_path().exists()


def test_non_utf8_stdin(provider_env: FakeOpenAI) -> None:
    result = grizz("ask", input=b"caf\xe9 au lait")
    assert result.exit_code == 2 and "not UTF-8" in result.stderr


def test_not_an_image(provider_env: FakeOpenAI, tmp_path: Path) -> None:
    fake = tmp_path / "cat.png"
    fake.write_text("definitely not a png")
    result = grizz("ask", "--image", str(fake), "what is it")
    assert result.exit_code == 2 and "is not an image" in result.stderr
    assert provider_env.requests == []


def test_corrupt_config(provider_env: FakeOpenAI) -> None:
    paths.config_file().write_text("model = \n")
    result = grizz("ask", "hi")
    assert result.exit_code == 3 and "not valid TOML" in result.stderr


def test_damaged_database_is_left_alone(provider_env: FakeOpenAI) -> None:
    paths.db_path().write_bytes(b"\0garbage" * 512)
    result = grizz("ask", "hi")
    assert result.exit_code == 1
    assert "not a usable Grizz database" in result.stderr
    assert paths.db_path().read_bytes() == b"\0garbage" * 512


def test_ephemeral_stores_nothing_and_sends_no_history(
    provider_env: FakeOpenAI,
) -> None:
    grizz("ask", "remember the honey")
    result = grizz("ask", "--ephemeral", "--json", "one-off")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["message_id"] is None
    assert [m["content"] for m in stored()] == [
        "remember the honey",
        "Hello from Grizz's fake provider!",
    ]
    sent = provider_env.requests[-1]
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert "tools" not in sent


def test_next_ask_sees_today_and_remembered_notes(provider_env: FakeOpenAI) -> None:
    assert grizz("memory", "add", "Name is Robin").exit_code == 0
    grizz("ask", "first question")
    grizz("ask", "second question")
    messages = provider_env.requests[-1]["messages"]
    assert "Name is Robin" in messages[0]["content"]
    assert [m["content"] for m in messages[1:]] == [
        "first question",
        "Hello from Grizz's fake provider!",
        "second question",
    ]


def test_model_flag_beats_env(provider_env: FakeOpenAI) -> None:
    grizz("ask", "-m", "flag-model", "hi")
    assert provider_env.requests[0]["model"] == "flag-model"
