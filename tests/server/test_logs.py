"""On-disk logs rotate at `log_max_bytes`, keeping `log_backups` files, each
private to the server's user; the launcher still finds a child's stop reason
after a rotation."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from grizz_server.preflight import child_reason

WRITE = (
    "import logging; from grizz_server.cli import _logging; "
    "from grizz_server.settings import load_server_settings; "
    "_logging('gateway', load_server_settings(), False); "
    "log = logging.getLogger('grizz_server.gateway'); "
    "[log.info('line %d', n, extra={'pad': 'x' * 100}) for n in range(200)]; "
    "log.error('stopping', extra={'reason': 'Port 8765 is taken.'})"
)


def _run(tmp_path: Path, **settings: str) -> Path:
    logs = tmp_path / "logs"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("INVOCATION_ID", "JOURNAL_STREAM")
    }
    env |= {"GRIZZ_HOME": str(tmp_path / "home"), "GRIZZ_SERVER_LOG_DIR": str(logs)}
    env |= {f"GRIZZ_SERVER_{k.upper()}": v for k, v in settings.items()}
    proc = subprocess.run(
        [sys.executable, "-c", WRITE], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return logs


def test_logs_rotate_by_size_and_count(tmp_path: Path) -> None:
    logs = _run(tmp_path, log_max_bytes="4000", log_backups="2")
    names = sorted(p.name for p in logs.iterdir())
    assert names == ["gateway.log", "gateway.log.1", "gateway.log.2"]
    for path in logs.iterdir():
        assert path.stat().st_size <= 4000
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for line in path.read_text().splitlines():
            assert json.loads(line)["process"] == "gateway"
    assert "Port 8765 is taken." in (logs / "gateway.log").read_text()


def test_default_keeps_one_growing_file_under_ten_mebibytes(tmp_path: Path) -> None:
    logs = _run(tmp_path)
    assert sorted(p.name for p in logs.iterdir()) == ["gateway.log"]
    assert len((logs / "gateway.log").read_text().splitlines()) == 201


def test_a_stop_reason_is_found_after_the_file_rotated(tmp_path: Path) -> None:
    log_file = tmp_path / "worker-1.log"
    log_file.write_text(json.dumps({"msg": "started"}) + "\n")
    offset = 10_000  # the size the launcher saw before the file rotated
    log_file.write_text(json.dumps({"msg": "x", "reason": "Redis went away."}) + "\n")
    assert child_reason(log_file, offset) == "redis went away."
