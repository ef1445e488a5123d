"""Shared set-up for the server benchmarks: Redis, fake provider, gateway, workers.

Everything runs as real processes on this machine: a `redis-server`, the
OpenAI-compatible fake (`python -m tests.fakes.openai_server`), and
`python -m grizz_server gateway|worker`, each with its own environment.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grizz_server.redis_server import RedisProcess, free_port  # noqa: E402
from grizz_server.settings import ServerSettings  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Server:
    """Redis + fake provider + gateway + N workers, torn down on exit."""

    def __init__(
        self,
        *,
        workers: int,
        text: str,
        chunk: int,
        db_url: str = "",
        delay_ms: float = 0.0,
        **settings: Any,
    ) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="grizz-bench-"))
        self.db_url = db_url or f"sqlite:///{self.home / 'server.db'}"
        self.workers = workers
        self.text = text
        self.chunk = chunk
        self.delay_ms = delay_ms
        self.overrides = settings
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis: RedisProcess | None = None
        self.port = free_port()
        self.fake_url = ""
        self.tokens: list[str] = []
        self.gateway_pid = 0
        self.profile_dir: Path | None = None

    def env(self) -> dict[str, str]:
        settings = ServerSettings(
            redis_url=self.redis.url if self.redis else "",
            port=self.port,
            db_url=self.db_url,
            log_dir=str(self.home / "logs"),
            **self.overrides,
        )
        return {
            **os.environ,
            **settings.env(),
            "GRIZZ_HOME": str(self.home),
            "GRIZZ_NO_KEYRING": "1",
            "OPENAI_BASE_URL": self.fake_url,
            "OPENAI_API_KEY": "sk-bench",
            "GRIZZ_SERVER_MODEL": "fake-model",
        }

    async def start(self, users: int) -> Server:
        self.redis = RedisProcess(self.home / "redis", persist=False).start()
        fake = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "server_fake.py"),
                "--text",
                self.text,
                "--chunk",
                str(self.chunk),
                "--delay-ms",
                str(self.delay_ms),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(fake)
        assert fake.stdout is not None
        self.fake_url = fake.stdout.readline().decode().strip()
        await self._users(users)
        env = self.env()
        prefix = [sys.executable]
        if self.profile_dir is not None:
            self.profile_dir.mkdir(exist_ok=True)
            prefix += ["-m", "cProfile", "-o", str(self.profile_dir / "gateway.prof")]
        gateway = subprocess.Popen(
            [*prefix, "-m", "grizz_server", "gateway"],
            cwd=ROOT,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(gateway)
        self.gateway_pid = gateway.pid
        for i in range(self.workers):
            prefix = [sys.executable]
            if self.profile_dir is not None:
                self.profile_dir.mkdir(exist_ok=True)
                prefix += [
                    "-m",
                    "cProfile",
                    "-o",
                    str(self.profile_dir / f"worker-{i}.prof"),
                ]
            self.procs.append(
                subprocess.Popen(
                    [*prefix, "-m", "grizz_server", "worker", "--name", f"worker-{i}"],
                    cwd=ROOT,
                    env=env,
                    stderr=subprocess.DEVNULL,
                )
            )
        await self._wait_ready()
        return self

    async def _users(self, count: int) -> None:
        from grizz_server.store import ServerStore

        store = await ServerStore.open(self.db_url)
        try:
            for i in range(count):
                await store.add_user(f"user{i}")
                token, _ = await store.add_token(f"user{i}", "bench")
                self.tokens.append(token)
        finally:
            await store.close()

    async def _wait_ready(self) -> None:
        from redis.asyncio import Redis

        from grizz_server import keys

        redis = Redis.from_url(self.redis.url)  # type: ignore[union-attr]
        try:
            for _ in range(600):
                workers = [k async for k in redis.scan_iter(match=keys.worker("*"))]
                if len(workers) >= self.workers and await _port_open(self.port):
                    return
                await asyncio.sleep(0.1)
        finally:
            await redis.aclose()
        raise RuntimeError("server did not come up")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each server process has used so far."""
        names = ["fake", "gateway"] + [f"worker-{i}" for i in range(self.workers)]
        pids = {name: proc.pid for name, proc in zip(names, self.procs, strict=False)}
        if self.redis is not None and self.redis.proc is not None:
            pids["redis"] = self.redis.proc.pid
        tick = os.sysconf("SC_CLK_TCK")
        out = {}
        for name, pid in pids.items():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[name] = (int(fields[11]) + int(fields[12])) / tick
        return out

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.redis is not None:
            self.redis.stop()


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def wait_quiet(seconds: float) -> None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        await asyncio.sleep(0.05)


__all__ = ["AsyncExitStack", "Server", "percentile", "rss_kib", "wait_quiet"]
