"""/metrics through prometheus_client: the workers' histograms and errors by
kind, per-worker process figures, label escaping, the bearer token, and
queue figures counted once for /metrics and `check` alike."""

from __future__ import annotations

import dataclasses
import json
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from redis.asyncio import Redis

from grizz_server import keys
from grizz_server.queue.admin import QueueAdmin
from grizz_server.queue.pipeline import ScriptPipeline
from grizz_server.settings import ServerSettings
from grizz_server.timings import HISTOGRAMS, Timings, read
from tests.fakes.openai_server import FakeOpenAI, HttpError, Text
from tests.server.conftest import Stack, start_stack, stop_stack
from tests.server.harness import until


async def _scrape(stack: Stack, token: str = "") -> httpx.Response:
    base = stack.url.replace("ws://", "http://")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as client:
        return await client.get(base + "/metrics", headers=headers)


def _samples(text: str) -> dict[str, list[Sample]]:
    return {
        family.name: family.samples for family in text_string_to_metric_families(text)
    }


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    for sample in samples:
        if sample.name == name and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            return sample.value
    raise AssertionError(f"no {name} {labels} in {samples}")


async def test_a_reply_fills_the_histograms_and_workers_report_their_process(
    stack: Stack,
) -> None:
    device = await stack.device("alice")
    accepted = await device.say("hello there")
    await device.finished(accepted.job_id)
    await device.close()

    async def observed() -> dict[str, list[Sample]] | None:
        families = _samples((await _scrape(stack)).text)
        done = _value(
            families["grizz_job_duration_seconds"], "grizz_job_duration_seconds_count"
        )
        return families if done >= 1 else None

    families = await until(observed)
    for spec in HISTOGRAMS:
        samples = families[spec.name.removesuffix("_total")]
        assert _value(samples, spec.name + "_count") >= 1, spec.name
        assert _value(samples, spec.name + "_bucket", le="+Inf") >= 1
    live = families["grizz_workers_live"][0].value
    assert live == 1
    worker = stack.worker_objects[0].name
    rss = _value(
        families["grizz_worker_resident_memory_bytes"],
        "grizz_worker_resident_memory_bytes",
        worker=worker,
    )
    assert rss > 1_000_000
    assert "grizz_provider_errors" in families


async def test_provider_errors_are_counted_by_kind(
    stack: Stack, provider_env: FakeOpenAI
) -> None:
    provider_env.enqueue(
        HttpError(503, "down"), HttpError(429, "slow down"), Text("ok")
    )
    device = await stack.device("alice")
    accepted = await device.say("hello")
    await device.finished(accepted.job_id, timeout=30)
    await device.close()

    async def counted() -> list[Sample] | None:
        samples = _samples((await _scrape(stack)).text)["grizz_provider_errors"]
        kinds = {s.labels.get("kind") for s in samples}
        return samples if {"http_5xx", "http_429"} <= kinds else None

    samples = await until(counted)
    assert _value(samples, "grizz_provider_errors_total", kind="http_5xx") == 1
    assert _value(samples, "grizz_provider_errors_total", kind="http_429") == 1


async def test_labels_are_escaped_and_every_family_has_help_and_type(
    stack: Stack,
) -> None:
    stack.gateway.gateway.context.metrics.inc(  # type: ignore[union-attr]
        "grizz_refusals_total", code='a "quoted"\\ code\nwith a newline'
    )
    text = (await _scrape(stack)).text
    families = _samples(text)
    codes = {s.labels["code"] for s in families["grizz_refusals"]}
    assert 'a "quoted"\\ code\nwith a newline' in codes
    for name in ("grizz_queue_depth", "grizz_refusals", "grizz_queue_wait_seconds"):
        assert f"# HELP {name}" in text and f"# TYPE {name}" in text


async def test_metrics_token_is_required_when_set(
    server_settings: ServerSettings, provider_env: FakeOpenAI
) -> None:
    settings = dataclasses.replace(server_settings, metrics_token="s3cret-metrics")
    running = await start_stack(settings, workers=0)
    try:
        assert (await _scrape(running)).status_code == 401
        assert (await _scrape(running, "wrong")).status_code == 401
        ok = await _scrape(running, "s3cret-metrics")
        assert ok.status_code == 200 and "grizz_queue_depth" in ok.text
    finally:
        await stop_stack(running)


async def test_metrics_and_check_count_workers_by_one_rule(
    stack: Stack, aredis: Redis, fast_settings: ServerSettings
) -> None:
    """A worker whose heartbeat key is about to expire is stale for `check`;
    /metrics used to SCAN for the key and call it live."""
    now = int(time.time() * 1000)
    await aredis.set(keys.worker("dying"), json.dumps({"pid": 1}), px=100)
    await aredis.zadd(keys.WORKERS, {"dying": now - 400})

    async def both_live() -> bool:
        families = _samples((await _scrape(stack)).text)
        return families["grizz_workers_live"][0].value == 1 or None  # type: ignore[return-value]

    await until(both_live)
    status = await QueueAdmin(ScriptPipeline(aredis), fast_settings).status()
    families = _samples((await _scrape(stack)).text)
    assert families["grizz_workers_live"][0].value == status.live_workers == 1
    assert families["grizz_workers_stale"][0].value == status.stale_workers == 1


async def test_timings_flush_adds_up_across_workers(aredis: Redis) -> None:
    first, second = Timings(), Timings()
    for timings, seconds in ((first, 0.02), (second, 0.02), (second, 400.0)):
        timings.observe(HISTOGRAMS[0], seconds)
    first.error("network")
    second.error("network")
    await first.flush(aredis)
    await second.flush(aredis)
    await second.flush(aredis)  # nothing new: adds nothing
    histograms, errors = await read(aredis)
    data = histograms[HISTOGRAMS[0].name]
    assert data.count == 3 and data.counts[-1] == 1 and sum(data.counts) == 3
    assert data.total == pytest.approx(400.04)
    assert errors == {"network": 2}
