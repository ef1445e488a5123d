"""Defects a new-user acceptance walkthrough found, each pinned by a test."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from grizz_core import protocol as p
from grizz_server.gateway.revocation import announce_revoked
from grizz_server.gateway.server import RunningGateway
from grizz_server.queue.admission import JobAdmission
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.settings import ServerSettings
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack, start_stack, stop_stack
from tests.server.harness import Device


async def test_a_resend_with_other_text_is_a_conflict(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    provider_env.enqueue(Text("Only once."))
    device = await stack.device("alice")
    message_id = str(uuid.uuid4())
    first = await device.say("original", message_id=message_id, day="2026-11-20")
    await device.finished(first.job_id)
    store = stack.store.for_user(stack.user_ids["alice"])
    cursor = await store.current_seq()
    refused = await device.request(
        p.Send(text="DIFFERENT", message_id=message_id), p.Accepted
    )
    assert isinstance(refused, p.Error) and refused.code == p.CONFLICT
    other_day = await device.request(
        p.Send(text="original", message_id=message_id, day="2026-11-21"), p.Accepted
    )
    assert isinstance(other_day, p.Error) and other_day.code == p.CONFLICT
    stored = await store.get_message(message_id)
    assert stored is not None and stored.content == "original"
    assert await store.current_seq() == cursor  # nothing changed
    # an identical re-send (with or without its day) is still a duplicate
    # (each on its own device: a duplicate replays the reply from its start)
    for day in ("2026-11-20", ""):
        phone = await stack.device("alice")
        again = await phone.say("original", message_id=message_id, day=day)
        assert again.duplicate and again.job_id == first.job_id
        assert again.message["content"] == "original"
        await phone.close()
    assert len(provider_env.requests) == 1
    await device.close()


async def _closed_as_revoked(device: Device, timeout: float) -> None:
    await device.wait_for(lambda: device.closed is not None, timeout=timeout)
    assert isinstance(device.closed, ConnectionClosed), device.closed
    assert device.closed.rcvd is not None
    assert (device.closed.rcvd.code, device.closed.rcvd.reason) == (
        4401,
        "token revoked",
    )


async def test_revoking_a_token_closes_its_open_connection(stack: Stack) -> None:
    """The periodic re-check alone (no announcement) cuts the device off."""
    gateway = stack.gateway.gateway
    assert gateway is not None
    gateway.token_check_s = 0.2
    token, info = await stack.store.add_token("alice", "lost-phone")
    lost = await Device(stack.url, token).connect()
    laptop = await stack.device("alice")
    assert isinstance(await lost.request(p.Ping(), p.Pong), p.Pong)
    assert await stack.store.revoke_token(info.id)
    await _closed_as_revoked(lost, timeout=10)
    # the user's other device (another token) keeps working
    assert isinstance(await laptop.request(p.Ping(), p.Pong), p.Pong)
    assert isinstance(await laptop.request(p.Pull(), p.Changes), p.Changes)
    await laptop.close()


async def test_an_announced_revocation_closes_on_every_gateway_at_once(
    stack: Stack,
) -> None:
    second = await RunningGateway(stack.settings).__aenter__()
    second_url = f"ws://127.0.0.1:{second.port}"
    try:
        token, info = await stack.store.add_token("alice", "lost-phone")
        on_first = await Device(stack.url, token).connect()
        on_second = await Device(second_url, token).connect()
        laptop = await stack.device("alice")
        # a token revoked after the forged announcement: each gateway's hub
        # handles announcements one at a time, in order, so once this one's
        # devices are closed the forged one has been handled on both
        old_token, old = await stack.store.add_token("alice", "old-tablet")
        while old.id[:6] == info.id[:6]:  # the prefix below must stay unique
            old_token, old = await stack.store.add_token("alice", "old-tablet")
        olds = [await Device(u, old_token).connect() for u in (stack.url, second_url)]
        for device in (on_first, on_second, laptop, *olds):
            assert isinstance(await device.request(p.Ping(), p.Pong), p.Pong)
        # an announcement alone (a forged or early one) closes nothing
        assert await asyncio.to_thread(
            announce_revoked, info.id, stack.settings.redis_url
        )
        assert await stack.store.revoke_token(old.id)
        assert await asyncio.to_thread(
            announce_revoked, old.id, stack.settings.redis_url
        )
        for device in olds:
            await _closed_as_revoked(device, timeout=5)
        for device in (on_first, on_second):
            assert device.closed is None
            assert isinstance(await device.request(p.Ping(), p.Pong), p.Pong)
        # revoked in the store, then announced by a unique prefix (as the
        # admin command accepts): both gateways close long before their
        # periodic re-check (30 s) would
        assert await stack.store.revoke_token(info.id[:6])
        assert await asyncio.to_thread(
            announce_revoked, info.id[:6], stack.settings.redis_url
        )
        await _closed_as_revoked(on_first, timeout=5)
        await _closed_as_revoked(on_second, timeout=5)
        assert isinstance(await laptop.request(p.Ping(), p.Pong), p.Pong)
        await laptop.close()
    finally:
        await second.__aexit__(None, None, None)


async def test_pull_never_returns_a_cursor_beyond_the_users(stack: Stack) -> None:
    device = await stack.device("alice")
    welcome = await device.wait_for(lambda: device.frame(p.Welcome))
    page = await device.request(p.Pull(after=1_000_000), p.Changes)
    assert isinstance(page, p.Changes), page
    assert page.changes == [] and page.cursor == welcome.cursor == 0
    accepted = await device.say("after the pull")
    # `done` comes after the reply is stored: pulled after it, the page's
    # cursor is the user's last change (was racing the worker's write)
    await device.finished(accepted.job_id)
    page = await device.request(p.Pull(after=page.cursor), p.Changes)
    assert [c["data"].get("content") for c in page.changes if c["entity"] == "messages"]
    assert (
        page.cursor == await stack.store.for_user(stack.user_ids["alice"]).current_seq()
    )
    await device.close()


def _note(note_id: str, content: str) -> dict[str, Any]:
    return {
        "entity": "memory",
        "id": note_id,
        "data": {"content": content, "created_at": "2026-11-23T10:00:00+00:00"},
    }


async def test_push_refuses_a_row_too_big_to_pull_in_one_frame(
    server_settings: ServerSettings, provider_env: FakeOpenAI
) -> None:
    """A device that accepts frames of max_frame_bytes can always sync."""
    limit = 3000
    running = await start_stack(
        dataclasses.replace(server_settings, max_frame_bytes=limit), workers=0
    )
    try:
        device = await running.device("alice")
        await device.wait_for(lambda: device.frame(p.Welcome))
        big = _note("big", "b" * 2650)
        assert len(p.dump_frame(p.Push(changes=[big], ref="x" * 8))) < limit
        # JSON escapes make a control character six bytes in a frame
        escaped = [_note(f"esc{i}", "\x01" * 300) for i in range(4)]
        small = _note("small", "fits")
        pushed = await device.request(p.Push(changes=[big, small]), p.Pushed)
        assert isinstance(pushed, p.Pushed), pushed
        assert [r["status"] for r in pushed.results] == ["rejected", "applied"]
        assert pushed.results[0]["id"] == "big"
        assert "too large" in pushed.results[0]["error"]
        for change in escaped:
            answer = await device.request(p.Push(changes=[change]), p.Pushed)
            assert [r["status"] for r in answer.results] == ["applied"], answer
        store = running.store.for_user(running.user_ids["alice"])
        assert (await store.pull(0))[0][0]["id"] == "small"  # big is not stored
        # a device with max_size=limit pulls everything, page by page
        async with connect(
            running.url,
            additional_headers={"Authorization": f"Bearer {running.tokens['alice']}"},
            max_size=limit,
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "welcome"
            seen, cursor, more = [], 0, True
            while more:
                ref = "\x01" * p.MAX_REF  # the ref costing the most bytes
                await ws.send(p.dump_frame(p.Pull(after=cursor, ref=ref)))
                raw = await ws.recv()
                assert len(raw.encode()) <= limit
                page = p.parse_frame(raw)
                assert isinstance(page, p.Changes), page
                seen += [c["id"] for c in page.changes]
                cursor, more = page.cursor, page.has_more
        assert seen == ["small", "esc0", "esc1", "esc2", "esc3"]
        await device.close()
    finally:
        await stop_stack(running)


async def _hello_answer(stack: Stack, **fields: Any) -> tuple[p.Frame, Any]:
    """Send a header-less `hello`; return the first answer and the close (if any)."""
    async with connect(stack.url) as ws:
        await ws.send(json.dumps({"type": "hello", **fields}))
        answer = p.parse_frame(await ws.recv())
        if isinstance(answer, p.Welcome):
            return answer, None
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        return answer, closed.value.rcvd


async def test_a_malformed_hello_says_what_is_wrong(stack: Stack) -> None:
    token = stack.tokens["alice"]
    error, close = await _hello_answer(stack, token=token, device="d" * 65)
    assert isinstance(error, p.Error) and error.code == p.BAD_FRAME, error
    assert "device" in error.message
    assert (close.code, close.reason) == (4400, "bad hello")
    error, close = await _hello_answer(stack, token=token, protocol=2)
    assert isinstance(error, p.Error) and error.code == p.UNSUPPORTED_PROTOCOL
    assert "protocol 1" in error.message and close.code == 4400
    welcome, _ = await _hello_answer(stack, token=token, device="d" * 64, protocol=1)
    assert isinstance(welcome, p.Welcome) and welcome.user == "alice"
    # a wrong token is still `unauthorized`, closed with 4401
    error, close = await _hello_answer(stack, token="grz_" + "x" * 40, protocol=2)
    assert isinstance(error, p.Error)
    assert error.code == p.UNSUPPORTED_PROTOCOL  # the version is checked first
    error, close = await _hello_answer(stack, token="grz_" + "x" * 40)
    assert isinstance(error, p.Error) and error.code == p.UNAUTHORIZED
    assert close.code == 4401


async def test_push_batch_errors_are_as_documented(stack: Stack) -> None:
    device = await stack.device("alice")
    await device.send_raw('{"type":"push","changes":"not a list","ref":"p1"}')
    error = await device.wait_for(lambda: device.frame(p.Error, ref="p1"))
    assert error.code == p.BAD_FRAME
    note = _note("n1", "kept")
    pushed = await device.request(p.Push(changes=[1, note]), p.Pushed)
    assert isinstance(pushed, p.Pushed), pushed
    assert [r["status"] for r in pushed.results] == ["rejected", "applied"]
    assert pushed.results[0]["error"] == "each change must be an object"
    await device.send_raw(
        '{"type":"push","ref":"p2","changes":[{"entity":"memory","id":"n2",'
        '"data":{"content":"\\ud800","created_at":"2026-11-23T10:00:00+00:00"}}]}'
    )
    error = await device.wait_for(lambda: device.frame(p.Error, ref="p2"))
    assert error.code == p.BAD_CHANGE
    await device.close()


def _metric(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


async def test_metrics_count_every_refusal_and_hello_and_auth_is_logged(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    caplog.set_level(logging.INFO, logger="grizz_server")
    token = stack.tokens["alice"]
    for _ in range(3):
        welcome, _ = await _hello_answer(stack, token=token)
        assert isinstance(welcome, p.Welcome)
    await _hello_answer(stack, token=token, device="d" * 65)  # bad_frame
    await _hello_answer(stack, token="grz_wrong_" + "y" * 30)  # unauthorized
    with pytest.raises(InvalidStatus):
        await Device(stack.url, "grz_header_" + "z" * 30).connect()
    device = await stack.device("alice")
    await device.send_raw("not json")
    await device.wait_for(lambda: device.frame(p.Error, code=p.BAD_JSON))
    answer = await device.request(p.Resume(job_id=str(uuid.uuid4())), p.Pong)
    assert answer.code == p.NOT_FOUND
    await device.close()
    base = stack.url.replace("ws://", "http://")
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(base + "/metrics")).text
    assert _metric(metrics, 'grizz_frames_received_total{type="hello"}') == 5
    for code, count in (
        ("bad_frame", 1),
        ("unauthorized", 2),
        ("bad_json", 1),
        ("not_found", 1),
    ):
        assert _metric(metrics, f'grizz_refusals_total{{code="{code}"}}') == count
    assert _metric(metrics, "grizz_auth_failures_total") == 3
    failed = [r for r in caplog.records if r.getMessage() == "authentication failed"]
    assert [r.reason for r in failed] == [  # type: ignore[attr-defined]
        "bad hello: Field 'device' of 'hello' must be at most 64 printable characters.",
        "unknown or revoked token",
        "unknown or revoked token",
    ]
    assert all(r.remote.startswith("127.0.0.1:") for r in failed)  # type: ignore[attr-defined]
    logged = " ".join(str(r.__dict__) for r in caplog.records)
    assert "grz_" not in logged and token not in logged


async def test_redis_unavailable_is_logged_in_one_line(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = stack.gateway.gateway
    assert gateway is not None
    # a port nothing listens on: held (bound, never listening) for the whole
    # test, so no other process of a parallel run can take it meanwhile
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
        dead_redis = Redis.from_url(f"redis://127.0.0.1:{dead}")
        gateway.context = dataclasses.replace(
            gateway.context,
            queue=JobAdmission(ScriptPipeline(dead_redis), stack.settings),
        )
        try:
            device = await stack.device("alice")
            refused = await device.request(p.Send(text="hello?"), p.Accepted)
            assert isinstance(refused, p.Error) and refused.code == p.UNAVAILABLE
            await device.close()
        finally:
            await dead_redis.aclose()
    (record,) = [
        r
        for r in caplog.records
        if r.getMessage() == "redis unavailable while serving a frame"
    ]
    assert record.exc_info is None
    error: str = record.error  # type: ignore[attr-defined]
    assert "\n" not in error and "Error" in error and len(error) < 300


async def test_the_revoke_command_closes_the_device_at_once(
    stack: Stack, tmp_path: Path
) -> None:
    """`grizz-server tokens revoke ID`, as a self-hoster types it, in its own
    process: the device is cut off long before the periodic re-check."""
    import sys

    token, info = await stack.store.add_token("alice", "lost-phone")
    lost = await Device(stack.url, token).connect()
    assert isinstance(await lost.request(p.Ping(), p.Pong), p.Pong)
    env = {
        "REDIS_URL": stack.settings.redis_url,
        "GRIZZ_SERVER_DB_URL": stack.settings.db_url,
        "PATH": "/usr/bin:/bin",
        "GRIZZ_HOME": str(tmp_path / "admin-home"),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "grizz_server",
        "tokens",
        "revoke",
        info.id,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err
    assert out.decode().strip() == (
        f"Revoked token {info.id}; its open connections are closed now."
    )
    await _closed_as_revoked(lost, timeout=5)


class _SlowWrites:
    """A device's store on a slow disk: each message write takes `delay` more."""

    def __init__(self, store: Any, delay: float) -> None:
        self._store = store
        self._delay = delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def add_message(self, **kwargs: Any) -> Any:
        await asyncio.sleep(self._delay)
        return await self._store.add_message(**kwargs)


async def test_accepted_comes_before_any_frame_of_its_reply(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    """The worker may begin, and the first chunks reach the gateway, before
    the gateway's write of the message (and so `accepted`) is done: the
    device still hears `accepted` first, then the reply."""
    for _ in range(4):
        provider_env.enqueue(Text("Quick!", chunk=2))
    device = await stack.device("alice")
    await device.wait_for(lambda: device.frame(p.Welcome))
    gateway = stack.gateway.gateway
    assert gateway is not None
    (conn,) = gateway.context.hub.users[stack.user_ids["alice"]]
    conn.store = _SlowWrites(conn.store, 0.3)  # type: ignore[attr-defined]
    assert device.ws is not None
    for n in range(4):
        await device.ws.send(
            p.dump_frame(p.Send(text=f"slow disk {n}", message_id=str(uuid.uuid4())))
        )
        await device.wait_for(
            lambda k=n: sum(isinstance(f, p.Done) for f in device.frames) == k + 1,  # type: ignore[misc]
            timeout=30,
        )
    accepted: set[str] = set()
    for frame in device.frames:
        if isinstance(frame, p.Accepted):
            accepted.add(frame.job_id)
        elif isinstance(frame, p.Chunk | p.Done):
            assert frame.job_id in accepted, f"{frame.TYPE} before accepted"
    assert len(accepted) == 4
