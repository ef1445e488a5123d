"""Small defects of the commands (issue 13, "Minor"); each failed before its fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from grizz_core import paths
from grizz_tui.cli import app
from grizz_tui.store.db import open_database
from tests.fakes.openai_server import FakeOpenAI, HttpError, Text

GRIZZ = os.fsencode(Path(sys.executable).parent / "grizz")


def grizz(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), input=input)


def run_bytes(*args: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [GRIZZ, *args],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    )


def test_non_utf8_arguments_are_one_line_not_a_traceback(
    provider_env: FakeOpenAI,
) -> None:
    for args in ([b"ask", b"caf\xe9"], [b"memory", b"add", b"caf\xe9"]):
        done = run_bytes(*args)
        assert done.returncode == 2, done.stderr
        assert b"Traceback" not in done.stderr
        assert done.stderr.count(b"\n") == 1 and b"not UTF-8" in done.stderr
        assert b"0xe9" in done.stderr


def test_config_set_and_key_set_in_a_read_only_home(grizz_home: Path) -> None:
    # Root ignores file modes, so the write is made to fail another way: the
    # temporary file each writer replaces the real one with cannot be created.
    (grizz_home / "config.toml.tmp").mkdir()
    (grizz_home / "secrets.tmp").mkdir()
    for result in (
        grizz("config", "set", "model", "llama3.2"),
        grizz("config", "unset", "model"),
        grizz("key", "set", input="sk-test\n"),
    ):
        assert result.exit_code == 3, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Could not write" in result.stderr and "Traceback" not in result.stderr
    assert not paths.config_file().exists() and not paths.secrets_file().exists()


def test_raw_output_ends_with_a_newline(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(Text("Hello there", chunk=3))
    done = run_bytes(b"ask", b"hi")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"Hello there\n"


def test_plurals_in_history_and_import(
    provider_env: FakeOpenAI, tmp_path: Path
) -> None:
    assert grizz("memory", "add", "Likes tea").exit_code == 0
    provider_env.enqueue(Text("Tea is great."))
    assert grizz("ask", "tea?").exit_code == 0
    out = tmp_path / "export.json"
    assert grizz("export", "-f", "json", "-o", str(out)).exit_code == 0
    paths.db_path().unlink()
    imported = grizz("import", str(out))
    assert imported.stdout.strip() == "Imported 1 day, 2 messages, 1 note."


def test_search_says_so_when_nothing_matches(provider_env: FakeOpenAI) -> None:
    result = grizz("search", "zebra")
    assert result.exit_code == 1
    assert "Nothing found for 'zebra'." in result.stderr


def test_export_of_an_empty_day_says_so() -> None:
    result = grizz("export", "-d", "2020-01-01")
    assert result.exit_code == 1
    assert "no conversation on 2020-01-01" in result.stderr
    assert grizz("export", "-d", "2020-01-01", "-f", "json").exit_code == 1


def test_markdown_export_keeps_attachments_and_errors(
    provider_env: FakeOpenAI, tmp_path: Path
) -> None:
    png = tmp_path / "cat.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    provider_env.enqueue(Text("A cat!"))
    assert grizz("ask", "-i", str(png), "what is this?").exit_code == 0
    provider_env.enqueue(HttpError(400, "context too long"))
    assert grizz("ask", "again").exit_code != 0
    md = grizz("export").stdout
    assert "cat.png (image/png, 40 bytes)" in md
    assert "context too long" in md


def test_exports_leave_out_the_host_name(provider_env: FakeOpenAI) -> None:
    import socket

    provider_env.enqueue(Text("Hi!"))
    assert grizz("ask", "hello").exit_code == 0
    raw = grizz("export", "-f", "json").stdout
    data = json.loads(raw)
    metadata = [m["metadata"] for m in data["conversations"][0]["messages"]]
    assert all("host" not in m and "pid" not in m for m in metadata)
    assert socket.gethostname() not in raw


def test_history_shows_a_dead_reply_as_interrupted(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(Text("Half a"))
    assert grizz("ask", "hello").exit_code == 0
    db = open_database(paths.db_path())
    db.execute(
        "UPDATE messages SET status = 'streaming', metadata = ?"
        " WHERE role = 'assistant'",
        [json.dumps({"pid": 2**22 + 7, "host": __import__("socket").gethostname()})],
    )
    db.close()
    shown = grizz("history", "-d", "today").stdout
    assert "(streaming)" not in shown and "(interrupted)" in shown


def _interrupt_after(proc: subprocess.Popen[bytes], seconds: float) -> None:
    import signal
    import time

    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)


def test_ctrl_c_with_json_gives_the_partial_and_its_ids(
    provider_env: FakeOpenAI,
) -> None:
    provider_env.enqueue(Text("word " * 300, chunk=5, delay=0.02))
    proc = subprocess.Popen(
        [GRIZZ, "ask", "--json", "ramble"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    _interrupt_after(proc, 1.5)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    data = json.loads(out)
    assert data["exit_code"] == 130 and data["status"] == "interrupted"
    db = open_database(paths.db_path())
    (row,) = db.query("SELECT id, content FROM messages WHERE role = 'assistant'")
    assert data["message_id"] == row["id"]
    assert data["reply"] and str(row["content"]).startswith(data["reply"][:20])
    assert data["user_message_id"] and data["conversation_id"]


def test_ctrl_c_on_a_terminal_prints_the_partial_once(
    provider_env: FakeOpenAI,
) -> None:
    """A partial taller than the terminal was left in the scrollback by the live
    region and printed again: the live region now never outgrows the screen, so
    it never moves the cursor up further than the terminal is tall."""
    import pty
    import re
    import select

    rows = 8
    provider_env.enqueue(
        Text(" ".join(f"w{i:03d}" for i in range(400)), chunk=5, delay=0.01)
    )
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [GRIZZ, "ask", "go"],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "40", "LINES": "8"},
    )
    os.close(child)
    out = b""
    interrupted = False
    while True:
        ready, _, _ = select.select([main], [], [], 10)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if not interrupted and b"w150" in out:
            proc.send_signal(__import__("signal").SIGINT)
            interrupted = True
    os.close(main)
    assert proc.wait(timeout=20) == 130
    erases = re.findall(rb"(?:\x1b\[2K\x1b\[1A)+", out)
    assert max(len(e) // len(b"\x1b[2K\x1b[1A") for e in erases) < rows
    assert out.count(b"w000 ") >= 1


def test_config_set_refuses_bad_values_and_takes_negative_numbers() -> None:
    for key, value in (
        ("timezone", "Mars/Olympus"),
        ("tui.theme", "no-such-theme"),
        ("base_url", "ftp://example.com/v1"),
        ("base_url", "localhost:11434"),
        ("server.url", "http://example.com"),
    ):
        result = grizz("config", "set", key, value)
        assert result.exit_code == 3, (key, value, result.output)
        assert f"Setting '{key}'" in result.stderr or "Unknown theme" in result.stderr
    assert not paths.config_file().exists()
    for key, value in (
        ("timezone", "Europe/Paris"),
        ("tui.theme", "nord"),
        ("base_url", "http://localhost:11434/v1"),
        ("server.url", "wss://grizz.example.com"),
    ):
        assert grizz("config", "set", key, value).exit_code == 0, (key, value)
    negative = grizz("config", "set", "temperature", "-1")
    assert negative.exit_code == 0, negative.output
    assert negative.stdout.strip() == "temperature = -1.0"


def test_search_snippets_keep_brackets(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(Text("Use x[0] for the first heron."))
    assert grizz("ask", "how do I index [a list]?").exit_code == 0
    found = grizz("search", "index").stdout
    assert "[a list]?" in found and "[index]" in found
    found = grizz("search", "heron").stdout
    assert "x[0]" in found
