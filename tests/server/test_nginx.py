"""deploy/nginx.conf, run on loopback: TLS with a self-signed CA and the
WebSocket upgrade to a real gateway, as a device connects with wss://."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from grizz_core import protocol as p
from grizz_tui.sync.client import ServerUnreachable, SyncClient
from tests.server.conftest import Stack
from tests.server.harness import Device
from tests.sync.tls import make_ca_and_cert

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
)
pytestmark = pytest.mark.skipif(
    NGINX is None,
    reason="nginx is not installed (apt-get install nginx-light; scripts/test does)",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _site(folder: Path, gateway: int, https: int, http: int) -> Path:
    """deploy/nginx.conf with this test's ports and certificate."""
    ca, cert, key = make_ca_and_cert(folder)
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    for old, new in (
        ("127.0.0.1:8765", f"127.0.0.1:{gateway}"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;"),
        ("listen 80;", f"listen 127.0.0.1:{http};"),
        ("/etc/letsencrypt/live/grizz.example.org/fullchain.pem", str(cert)),
        ("/etc/letsencrypt/live/grizz.example.org/privkey.pem", str(key)),
    ):
        assert old in site, old
        site = site.replace(old, new)
    site = "\n".join(line for line in site.splitlines() if "[::]" not in line)
    (folder / "grizz.conf").write_text(site)
    return ca


@contextlib.contextmanager
def _nginx(folder: Path, ca_out: list[Path], gateway: int) -> Iterator[int]:
    https, http = _free_port(), _free_port()
    ca_out.append(_site(folder, gateway, https, http))
    main = folder / "nginx.conf"
    temp = folder / "temp"
    temp.mkdir()
    main.write_text(
        f"""daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {folder}/grizz.conf;
}}
"""
    )
    assert NGINX is not None
    check = subprocess.run(
        [NGINX, "-t", "-p", str(folder), "-c", str(main)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [NGINX, "-p", str(folder), "-c", str(main)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", https), timeout=0.2),
            ):
                break
            assert proc.poll() is None, (folder / "error.log").read_text()
            time.sleep(0.05)  # nginx is another process: poll its port
        yield https
    finally:
        proc.terminate()
        proc.wait(10)


class _TlsDevice(Device):
    def __init__(self, url: str, token: str, context: ssl.SSLContext) -> None:
        super().__init__(url, token)
        self.context = context

    async def connect(self) -> Device:
        self.ws = await connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self.token}"},
            ssl=self.context,
            open_timeout=10,
        )
        self._reader = asyncio.create_task(self._read())
        return self


async def test_a_device_streams_a_reply_through_nginx_with_wss_and_a_ca_file(
    stack: Stack, tmp_path: Path
) -> None:
    ca: list[Path] = []
    with _nginx(tmp_path, ca, stack.gateway.port) as port:
        url = f"wss://localhost:{port}"
        # the device's own client, with `sync.ca_file`
        client = SyncClient(url, stack.tokens["alice"], ca_file=str(ca[0]))
        welcome = await client.open()
        assert welcome.user == "alice"
        await client.close()
        # without the CA the certificate is refused
        with pytest.raises(ServerUnreachable, match="TLS with localhost"):
            await SyncClient(url, stack.tokens["alice"]).open()

        context = ssl.create_default_context(cafile=str(ca[0]))
        device = await _TlsDevice(url, stack.tokens["alice"], context).connect()
        accepted = await device.say("hello through the proxy")
        reply = await device.finished(accepted.job_id)
        assert reply.done and reply.text
        assert device.frame(p.Welcome) is not None
        await device.close()

        async with httpx.AsyncClient(verify=context) as http:
            health = await http.get(f"https://localhost:{port}/healthz")
            assert health.status_code == 200 and health.json()["ok"] is True
            hidden = await http.get(f"https://localhost:{port}/metrics")
            assert hidden.status_code == 404
