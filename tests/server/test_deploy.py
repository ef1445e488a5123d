"""deploy/grizz-server.service and logging under systemd (issue 14)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grizz_server.settings import STARTUP_FAILED

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "grizz-server.service"


def _service() -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith("#") and section == "Service":
            key, _, value = line.partition("=")
            lines.setdefault(key, []).append(value)
    return lines


def test_unit_runs_grizz_server_the_way_the_launcher_expects() -> None:
    service = _service()
    assert service["Type"] == ["simple"]
    assert service["ExecStart"][0].endswith("/grizz-server run")
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == [str(STARTUP_FAILED)]
    assert any(v.startswith("GRIZZ_HOME=") for v in service["Environment"])
    home = next(v for v in service["Environment"] if v.startswith("GRIZZ_HOME="))
    assert home == f"GRIZZ_HOME=/var/lib/{service['StateDirectory'][0]}"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[key] == ["yes"], key
    assert service["ProtectSystem"] == ["strict"]


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed on this machine",
)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this installation
    installed = Path(sys.executable).with_name("grizz-server")
    if not installed.is_file():
        pytest.skip(f"no grizz-server script next to {sys.executable}")
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text().replace("/usr/local/bin/grizz-server", str(installed))
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    about_unit = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if UNIT.name in line
    ]
    assert result.returncode == 0 and about_unit == [], result.stderr


LOGGING = (
    "import logging, sys; from pathlib import Path; from grizz_server import logs; "
    "logs.configure('worker-1', Path(sys.argv[1])); "
    "log = logging.getLogger('grizz_server.worker'); "
    "log.info('job done', extra={'job': 'j1'}); "
    "log.error('cannot start', extra={'reason': 'Redis is unreachable.'})"
)


@pytest.mark.parametrize(
    ("env", "on_disk"),
    [
        ({}, ["job done", "cannot start"]),
        ({"INVOCATION_ID": "0123abcd"}, ["cannot start"]),
        ({"JOURNAL_STREAM": "8:12345"}, ["cannot start"]),
    ],
)
def test_under_systemd_logs_go_to_stderr_only(
    tmp_path: Path, env: dict[str, str], on_disk: list[str]
) -> None:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("INVOCATION_ID", "JOURNAL_STREAM")
    }
    proc = subprocess.run(
        [sys.executable, "-c", LOGGING, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **env},
    )
    assert proc.returncode == 0, proc.stderr
    on_stderr = [json.loads(line)["msg"] for line in proc.stderr.splitlines()]
    assert on_stderr == ["job done", "cannot start"]
    written = (tmp_path / "worker-1.log").read_text().splitlines()
    assert [json.loads(line)["msg"] for line in written] == on_disk
    # what the launcher reads to say why a child stopped is still there
    from grizz_server.preflight import child_reason

    assert child_reason(tmp_path / "worker-1.log") == "redis is unreachable."
