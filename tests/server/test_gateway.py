"""Gateway refusals and guarantees: auth, limits, backpressure, rate, DLQ, isolation."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from grizz_core import protocol as p
from grizz_core.domain import Role, Status, day_conversation_id
from grizz_server import keys
from grizz_server.settings import ServerSettings
from tests.fakes.openai_server import FakeOpenAI, HttpError, Text
from tests.server.conftest import Stack, start_stack, stop_stack
from tests.server.harness import Device


async def test_wrong_revoked_and_missing_tokens(stack: Stack) -> None:
    with pytest.raises(InvalidStatus) as info:
        await Device(stack.url, "grz_" + "x" * 40).connect()
    assert info.value.response.status_code == 401
    token, token_info = await stack.store.add_token("alice", "old-phone")
    ok = await Device(stack.url, token).connect()
    await ok.wait_for(lambda: ok.frame(p.Welcome))
    await ok.close()
    assert await stack.store.revoke_token(token_info.id)
    with pytest.raises(InvalidStatus):
        await Device(stack.url, token).connect()
    # no header: the first frame must be a valid hello
    async with connect(stack.url) as ws:
        await ws.send(p.dump_frame(p.Ping(ref="sneaky")))
        error = p.parse_frame(await ws.recv())
        assert isinstance(error, p.Error) and error.code == p.UNAUTHORIZED
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    hello = await Device(stack.url, stack.tokens["bob"], header=False).connect()
    welcome = await hello.wait_for(lambda: hello.frame(p.Welcome))
    assert welcome.user == "bob"
    await hello.close()


async def test_health_and_metrics_share_the_port(stack: Stack) -> None:
    import httpx

    base = stack.url.replace("ws://", "http://")
    async with httpx.AsyncClient() as client:
        health = await client.get(base + "/healthz")
        assert health.status_code == 200 and health.json()["ok"] is True
        metrics = (await client.get(base + "/metrics")).text
    assert "grizz_queue_depth 0" in metrics
    assert "grizz_workers_live" in metrics
    assert all(
        line.startswith(("#", "grizz_")) for line in metrics.splitlines() if line
    )


async def test_provider_failing_forever_ends_in_the_dead_letter_stream(
    stack: Stack, provider_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider_env.enqueue(HttpError(500, "boom", times=1000))
    device = await stack.device("alice")
    accepted = await device.say("Are you there?")
    reply = await device.finished(accepted.job_id)
    assert reply.done is None and reply.error is not None
    assert reply.error.code == p.JOB_FAILED and "500" in reply.error.message
    retrying = [f for f in device.frames if isinstance(f, p.Retrying)]
    assert len(retrying) == 2
    redis = stack.gateway.gateway.redis  # type: ignore[union-attr]
    dead = await redis.xrange(keys.DLQ)
    assert len(dead) == 1 and dead[0][1][b"attempts"] == b"3"
    attempts = len(provider_env.requests)
    assert attempts == 3  # one budget: 3 attempts, no HTTP retries inside (issue 14)
    store = stack.store.for_user(stack.user_ids["alice"])
    kept = await store.get_message(accepted.message_id)
    assert kept is not None and kept.content == "Are you there?"
    failed = await store.get_message(accepted.reply_id)
    assert failed is not None and failed.status == Status.ERROR
    # an operator retries it once the provider is back
    provider_env.queue.clear()
    provider_env.enqueue(Text("Back again!"))
    listed = await _cli(
        "dlq", "list", "--json", "--redis-url", stack.settings.redis_url
    )
    assert [d["job"] for d in json.loads(listed)] == [accepted.job_id]
    await _cli("dlq", "retry", accepted.job_id, "--redis-url", stack.settings.redis_url)
    await device.wait_for(lambda: device.replies[accepted.job_id].done is not None)
    assert device.replies[accepted.job_id].text == "Back again!"
    assert await redis.xlen(keys.DLQ) == 0
    retried = await store.get_message(accepted.reply_id)
    assert retried is not None and retried.status == Status.COMPLETE
    await device.close()


async def _cli(*args: str) -> str:
    import asyncio
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "grizz_server",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_message_limits(stack: Stack) -> None:
    device = await stack.device("alice")
    too_long = "x" * (stack.settings.max_message_chars + 1)
    error = await device.request(p.Send(text=too_long), p.Accepted)
    assert isinstance(error, p.Error) and error.code == p.TOO_LONG
    error = await device.request(p.Send(text="   "), p.Accepted)
    assert isinstance(error, p.Error) and error.code == p.BAD_FRAME
    error = await device.request(p.Send(text="hi", tz="Mars/Olympus"), p.Accepted)
    assert isinstance(error, p.Error) and error.code == p.BAD_FRAME
    await device.send_raw("x" * (stack.settings.max_frame_bytes + 10))
    await device.wait_for(lambda: device.closed is not None)
    assert isinstance(device.closed, ConnectionClosed)
    assert device.closed.rcvd is not None and device.closed.rcvd.code == 1009


@pytest.fixture
async def idle_stack(
    server_settings: ServerSettings, provider_env: FakeOpenAI
) -> Stack:
    """No workers: queued jobs stay queued, so limits can be hit."""
    settings = dataclasses.replace(
        server_settings, max_queue_depth=2, max_active_per_user=5, rate_burst=50
    )
    running = await start_stack(settings, workers=0)
    yield running  # type: ignore[misc]
    await stop_stack(running)


async def test_backpressure_refuses_past_the_queue_depth(idle_stack: Stack) -> None:
    device = await idle_stack.device("alice")
    one = await device.say("one")
    two = await device.say("two")
    phone = await idle_stack.device("alice")
    welcome = await phone.wait_for(lambda: phone.frame(p.Welcome))
    assert welcome.active_jobs == [one.job_id, two.job_id]  # phone can resume them
    bob = await idle_stack.device("bob")
    assert (await bob.wait_for(lambda: bob.frame(p.Welcome))).active_jobs == []
    refused = await device.request(p.Send(text="three"), p.Accepted)
    assert isinstance(refused, p.Error) and refused.code == p.BUSY
    assert refused.retry_after > 0
    store = idle_stack.store.for_user(idle_stack.user_ids["alice"])
    changes, _, _ = await store.pull(0, 100)
    texts = {c["data"].get("content") for c in changes if c["entity"] == "messages"}
    assert texts == {"one", "two"}  # a refused message is not stored


async def test_rate_limit(
    server_settings: ServerSettings, provider_env: FakeOpenAI
) -> None:
    settings = dataclasses.replace(
        server_settings, rate_burst=2, rate_per_minute=1, max_active_per_user=100
    )
    running = await start_stack(settings, workers=0)
    try:
        device = await running.device("alice")
        await device.say("a")
        await device.say("b")
        refused = await device.request(p.Send(text="c"), p.Accepted)
        assert isinstance(refused, p.Error) and refused.code == p.RATE_LIMITED
        assert 1 <= refused.retry_after <= 60
        bob = await running.device("bob")
        await bob.say("bob is not limited by alice")
    finally:
        await stop_stack(running)


async def test_concurrent_jobs_per_user(
    server_settings: ServerSettings, provider_env: FakeOpenAI
) -> None:
    settings = dataclasses.replace(server_settings, max_active_per_user=1)
    running = await start_stack(settings, workers=0)
    try:
        device = await running.device("alice")
        await device.say("first")
        refused = await device.request(p.Send(text="second"), p.Accepted)
        assert isinstance(refused, p.Error) and refused.code == p.TOO_MANY_JOBS
    finally:
        await stop_stack(running)


async def test_resending_a_message_is_idempotent(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    provider_env.enqueue(Text("Only once."))
    device = await stack.device("alice")
    message_id = str(uuid.uuid4())
    first = await device.say("Same message", message_id=message_id)
    await device.finished(first.job_id)
    again = await device.say("Same message", message_id=message_id)
    assert again.duplicate and again.job_id == first.job_id
    store = stack.store.for_user(stack.user_ids["alice"])
    messages = await store.recent_messages(first.conversation_id, limit=10)
    assert [m.role for m in messages] == [Role.ASSISTANT, Role.USER]
    assert len(provider_env.requests) == 1


async def test_no_frame_reaches_another_users_data(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    provider_env.enqueue(Text("Alice's secret reply."))
    alice = await stack.device("alice")
    bob = await stack.device("bob")
    accepted = await alice.say("my secret")
    await alice.finished(accepted.job_id)
    alice_store = stack.store.for_user(stack.user_ids["alice"])
    before, alice_cursor, _ = await alice_store.pull(0, 100)
    # resume someone else's job: indistinguishable from a job that does not exist
    error = await bob.request(p.Resume(job_id=accepted.job_id), p.Pong)
    assert isinstance(error, p.Error) and error.code == p.NOT_FOUND
    # send with alice's message id: bob gets his own message and job
    provider_env.enqueue(Text("Bob's reply."))
    own = await bob.say("bob here", message_id=accepted.message_id)
    assert own.job_id != accepted.job_id and not own.duplicate
    await bob.finished(own.job_id)
    # pull: only bob's rows
    pulled = await bob.request(p.Pull(after=0, limit=500), p.Changes)
    contents = json.dumps(pulled.changes)
    assert "secret" not in contents and "bob here" in contents
    # push over alice's ids: lands in bob's data only
    forged = dict(before[-1]["data"], content="hacked by bob", updated_at="2999-01-01")
    pushed = await bob.request(
        p.Push(
            changes=[{"entity": "messages", "id": accepted.reply_id, "data": forged}]
        ),
        p.Pushed,
    )
    assert isinstance(pushed, p.Pushed | p.Error)
    after, cursor, _ = await alice_store.pull(0, 100)
    assert after == before and cursor == alice_cursor
    assert await bob.request(p.Ping(), p.Pong)
    assert not [
        f
        for f in bob.frames
        if getattr(f, "job_id", "") == accepted.job_id and not isinstance(f, p.Error)
    ]
    await alice.close()
    await bob.close()


async def test_idle_connections_are_closed(
    server_settings: ServerSettings, provider_env: FakeOpenAI
) -> None:
    settings = dataclasses.replace(server_settings, idle_timeout_s=0.5)
    running = await start_stack(settings, workers=0)
    try:
        device = await running.device("alice")
        await device.wait_for(lambda: device.closed is not None, timeout=10)
        assert isinstance(device.closed, ConnectionClosed)
        assert device.closed.rcvd is not None and device.closed.rcvd.code == 1000
        assert device.closed.rcvd.reason == "idle timeout"
    finally:
        await stop_stack(running)


async def test_shutdown_closes_devices_with_1001_and_keeps_the_job(
    server_settings: ServerSettings, provider_env: FakeOpenAI
) -> None:
    running = await start_stack(server_settings, workers=0)
    stopped = False
    try:
        device = await running.device("alice")
        accepted = await device.say("still there after the restart?")
        await running.gateway.__aexit__(None, None, None)
        stopped = True
        await device.wait_for(lambda: device.closed is not None, timeout=20)
        assert isinstance(device.closed, ConnectionClosed)
        assert device.closed.rcvd is not None and device.closed.rcvd.code == 1001
        redis = Redis.from_url(server_settings.redis_url)
        try:  # nothing lost: the job is still queued for the workers
            assert (
                await redis.hget(keys.job_info(accepted.job_id), "state") == b"queued"
            )
        finally:
            await redis.aclose()
    finally:
        for task in running.workers:
            task.cancel()
        if not stopped:
            await running.gateway.__aexit__(None, None, None)
        await running.store.close()


async def test_a_pull_of_big_rows_is_paged_to_fit_a_frame(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    """Rows that each fit a push frame but not all in one `changes` frame come
    in several pages, each within `max_frame_bytes`, none lost."""
    device = await stack.device("alice")
    await device.wait_for(lambda: device.frame(p.Welcome))
    limit = stack.settings.max_frame_bytes
    day = "2026-11-23"
    conv = day_conversation_id(day)
    pushed = [
        {
            "entity": "messages",
            "id": str(uuid.uuid4()),
            "data": {
                "conversation_id": conv,
                "role": "user",
                "content": f"{i} " + "bear " * (limit // 15),
                "created_at": f"2026-11-23T10:00:0{i}.000000+00:00",
            },
        }
        for i in range(6)
    ]
    conversation = {
        "entity": "conversations",
        "id": conv,
        "data": {"day": day, "tz": "UTC", "created_at": "2026-11-23T10:00:00+00:00"},
    }
    for change in [conversation, *pushed]:
        answer = await device.request(p.Push(changes=[change]), p.Pushed)
        assert isinstance(answer, p.Pushed), answer
    assert sum(len(p.dump_frame(p.Push(changes=[c]))) for c in pushed) > limit
    seen: list[str] = []
    cursor, pages = 0, 0
    while True:
        page = await device.request(p.Pull(after=cursor, limit=100), p.Changes)
        assert isinstance(page, p.Changes), page
        assert len(p.dump_frame(page).encode()) <= limit
        seen += [c["id"] for c in page.changes if c["entity"] == "messages"]
        cursor, pages = page.cursor, pages + 1
        if not page.has_more:
            break
    assert seen == [c["id"] for c in pushed] and pages >= 2
    await device.close()
