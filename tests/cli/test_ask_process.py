"""The installed `grizz` as a process: TTY vs pipe, broken pipe, Ctrl-C, imports."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from grizz_core import paths
from grizz_tui.store.db import open_database
from tests.fakes.openai_server import FakeOpenAI, Text

GRIZZ = str(Path(sys.executable).parent / "grizz")
MARKDOWN = "# Big News\n\nBears **love** honey.\n\n```python\nprint('hi')\n```\n"


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", **extra}


def rows() -> list[dict[str, object]]:
    db = open_database(paths.db_path())
    return list(db.query("SELECT role, content, status FROM messages ORDER BY rowid"))


def test_pipe_gets_the_raw_reply_byte_for_byte(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(Text(MARKDOWN, chunk=5))
    done = subprocess.run(
        [GRIZZ, "ask", "news?"],
        capture_output=True,
        env=env(),
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == MARKDOWN.encode()
    assert done.stderr == b""


def run_in_pty(
    args: list[str], extra_env: dict[str, str] | None = None
) -> tuple[int, str]:
    main, child = pty.openpty()
    proc = subprocess.Popen(
        args,
        stdin=child,
        stdout=child,
        stderr=child,
        env=env(**(extra_env or {})),
        close_fds=True,
    )
    os.close(child)
    out = b""
    while True:
        ready, _, _ = select.select([main], [], [], 20)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    return proc.wait(timeout=20), out.decode(errors="replace")


def test_terminal_gets_rendered_markdown(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(Text(MARKDOWN, chunk=5))
    code, out = run_in_pty([GRIZZ, "ask", "news?"])
    assert code == 0
    assert "\x1b[" in out  # styled
    assert "Big News" in out and "# Big News" not in out  # heading rendered
    assert "**love**" not in out


def test_no_color_on_a_terminal_prints_raw(provider_env: FakeOpenAI) -> None:
    provider_env.enqueue(Text(MARKDOWN, chunk=5))
    code, out = run_in_pty([GRIZZ, "ask", "news?"], {"NO_COLOR": "1"})
    assert code == 0
    assert "\x1b[" not in out and "**love**" in out


def test_terminal_stdin_is_never_waited_on(provider_env: FakeOpenAI) -> None:
    code, out = run_in_pty([GRIZZ, "ask"])
    assert code == 2 and "No prompt" in out


def test_broken_pipe_is_quiet_and_the_reply_is_kept(provider_env: FakeOpenAI) -> None:
    text = "".join(f"line {i}\n" for i in range(400))
    provider_env.enqueue(Text(text, chunk=7, delay=0.001))
    proc = subprocess.Popen(
        f"'{GRIZZ}' ask 'count' | head -n 1",
        shell=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        stdin=subprocess.DEVNULL,
    )
    out, err = proc.communicate(timeout=30)
    assert out == b"line 0\n"
    assert err == b""
    assert rows()[-1] == {"role": "assistant", "content": text, "status": "complete"}


def test_ctrl_c_keeps_partial_reply_marked_interrupted(
    provider_env: FakeOpenAI,
) -> None:
    provider_env.enqueue(Text("word " * 200, chunk=5, delay=0.05))
    proc = subprocess.Popen(
        [GRIZZ, "ask", "ramble"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    first = proc.stdout.read(10)  # the reply is streaming
    assert first
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert b"interrupted" in err and b"Traceback" not in err
    reply = rows()[-1]
    assert reply["status"] == "interrupted"
    printed = (first + out).decode()
    assert str(reply["content"]).startswith(printed[:10])
    assert 0 < len(str(reply["content"])) < len("word " * 200)


def test_ask_in_a_pipe_never_imports_textual_or_rich(provider_env: FakeOpenAI) -> None:
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write("
        "'HEAVY:' + ','.join(m for m in ('textual', 'openai', 'rich', 'pydantic')"
        " if m in sys.modules)))\n"
        "from grizz_tui.cli import main\n"
        "sys.argv = ['grizz', 'ask', 'hi']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        env=env(),
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.decode().endswith("HEAVY:")
