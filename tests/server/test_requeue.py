"""A dead worker's jobs go back on the queue at once; a poison message's budget.

Real Redis, the real queue scripts; the provider is the OpenAI-compatible fake.
"""

from __future__ import annotations

from grizz_core import protocol as p
from grizz_server import keys
from grizz_server.queue.admission import JobAdmission
from grizz_server.queue.jobs import Attempt
from grizz_server.queue.leases import JobLeases, requeue_dead
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.settings import ServerSettings
from grizz_server.worker.runner import for_devices
from tests.fakes.openai_server import FakeOpenAI, HttpError
from tests.server.conftest import Stack
from tests.server.test_queue import _job


async def test_a_dead_consumers_running_job_is_requeued_at_once(
    pipeline: ScriptPipeline,
) -> None:
    settings = ServerSettings()  # defaults: 30 s lease, 45 s visibility
    admission = JobAdmission(pipeline, settings)
    dead = JobLeases(pipeline, settings, consumer="host:1:worker-1:dead")
    live = JobLeases(pipeline, settings, consumer="host:2:worker-2:live")
    await dead.ensure_group()
    job = _job()
    assert (await admission.submit(job)).status == "queued"
    [delivery] = await dead.read(1, 100)
    first = await dead.begin(delivery)
    assert isinstance(first, Attempt) and first.attempt == 1
    # the worker's process dies here, lease held; reclaim waits 45 s for it
    assert await live.reclaim(10) == []
    assert await requeue_dead(pipeline, settings, dead.consumer) == 1
    [again] = await live.read(1, 100)
    assert again.job_id == job.job_id
    second = await live.begin(again)
    assert isinstance(second, Attempt) and second.attempt == 2
    assert not await dead.append(first, [("chunk", "zombie", "")])  # fenced
    consumers = await pipeline.redis.xinfo_consumers(keys.JOBS, keys.GROUP)
    names = {c["name"] for c in consumers}
    assert dead.consumer not in {n.decode() for n in names}


async def test_requeue_leaves_finished_and_other_consumers_jobs_alone(
    pipeline: ScriptPipeline,
) -> None:
    settings = ServerSettings()
    admission = JobAdmission(pipeline, settings)
    dead = JobLeases(pipeline, settings, consumer="dead")
    other = JobLeases(pipeline, settings, consumer="other")
    await dead.ensure_group()
    done, running = _job(), _job()
    for job in (done, running):
        assert (await admission.submit(job)).status == "queued"
    [d1] = await dead.read(1, 100)
    [d2] = await other.read(1, 100)
    a1, a2 = await dead.begin(d1), await other.begin(d2)
    assert isinstance(a1, Attempt) and isinstance(a2, Attempt)
    assert await dead.finish(a1, {"id": "r"})
    assert await requeue_dead(pipeline, settings, "dead") == 0
    assert await requeue_dead(pipeline, settings, "never-seen") == 0
    assert await other.still_owner(a2)  # a live consumer's job is untouched
    assert await dead.read(5, 50) == []


async def test_a_poison_message_costs_max_attempts_provider_requests(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    provider_env.enqueue(HttpError(500, "boom", times=1000))
    device = await stack.device("alice")
    accepted = await device.say("Are you there?")
    reply = await device.finished(accepted.job_id, timeout=60)
    assert reply.error is not None and reply.error.code == p.JOB_FAILED
    assert len(provider_env.requests) == stack.settings.max_attempts == 3
    host = provider_env.base_url.split("/")[2]
    texts = [reply.error.message] + [
        f.reason for f in device.frames if isinstance(f, p.Retrying)
    ]
    assert texts and all(host not in t and "127.0.0.1" not in t for t in texts)
    assert "500" in reply.error.message
    await device.close()


def test_device_sentences_name_no_provider_address() -> None:
    base = "http://10.0.0.7:46427/v1"
    assert (
        for_devices(
            "The provider at 10.0.0.7:46427 failed (HTTP 502) after 3 "
            "retries: bad gateway.",
            base,
        )
        == "The provider failed (HTTP 502): bad gateway."
    )
    assert for_devices(
        "Could not reach http://10.0.0.7:46427/v1 (refused); is the server "
        "running and base_url right?",
        base,
    ).startswith("Could not reach the provider's endpoint (refused)")
    assert "10.0.0.7" not in for_devices(
        f"{base}/chat/completions was not found (HTTP 404); base_url usually "
        "ends in /v1.",
        base,
    )
    assert (
        for_devices("Rate limited by 10.0.0.7:46427 (HTTP 429) after 0 retries.", base)
        == "Rate limited by the provider (HTTP 429)."
    )
