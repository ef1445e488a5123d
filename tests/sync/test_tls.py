"""wss:// through a TLS terminating proxy with a self-signed CA."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.server.conftest import Stack
from tests.sync.conftest import Home
from tests.sync.tls import make_ca_and_cert, tls_proxy


async def test_wss_with_the_ca_file_works_and_without_it_is_refused(
    stack: Stack, homes: Callable[[str], Home], tmp_path: Path
) -> None:
    ca, cert, key = make_ca_and_cert(tmp_path)
    home = homes("laptop")
    async with tls_proxy(cert, key, stack.gateway.port) as port:
        url = f"wss://localhost:{port}"
        untrusted = await home.grizz("login", url, input=stack.tokens["alice"] + "\n")
        assert untrusted.exit_code == 1
        assert "TLS with localhost" in untrusted.stderr
        assert untrusted.stderr.count("\n") == 1

        assert (
            await home.grizz("config", "set", "sync.ca_file", str(ca))
        ).exit_code == 0
        https = url.replace("wss://", "https://")
        result = await home.grizz("login", https, input=stack.tokens["alice"] + "\n")
        assert result.exit_code == 0, result.stderr
        assert result.stdout == f"Logged in to {url} as alice (device alice-laptop).\n"
        await home.grizz("memory", "add", "over TLS")
        synced = await home.grizz("sync")
        assert synced.stdout == "pushed 1, pulled 1\n", synced.stderr
