"""The wire protocol module: round trips, clear errors, fuzzed input never crashes."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grizz_core import protocol as p
from grizz_core.errors import ProtocolError

FIXED_ID = "6f1d4f8e-3a57-4d0e-9b8a-4b1f0c6a9e21"
SAMPLES: list[p.Frame] = [
    p.Hello(token="t", device="laptop"),
    p.Send(
        text="hi", ref="1", message_id=str(uuid.uuid4()), day="2026-01-02", tz="UTC"
    ),
    p.Resume(job_id=str(uuid.uuid4()), after="1700000000000-3", ref="r"),
    p.Push(changes=[{"kind": "memory", "id": "x"}], ref="p"),
    p.Pull(after=5, limit=10),
    p.Ping(ref="x"),
    p.Welcome(
        user="alice",
        device="laptop",
        cursor=3,
        limits={"max_message_chars": 10},
        active_jobs=["j"],
    ),
    p.Accepted(message_id="m", job_id="j", reply_id="r", conversation_id="c", ref="1"),
    p.Job(job_id="j", message_id="m", reply_id="r", conversation_id="c"),
    p.Chunk(job_id="j", attempt=1, entry="1-0", text="Hel"),
    p.Restart(job_id="j", attempt=2, entry="2-0"),
    p.Retrying(job_id="j", attempt=1, entry="2-1", delay_ms=100, reason="HTTP 500"),
    p.Tool(job_id="j", attempt=1, entry="3-0", name="remember", summary="noted"),
    p.Done(job_id="j", attempt=1, entry="4-0", message={"id": "r", "content": "Hello"}),
    p.Error(code=p.BUSY, message="Too busy", ref="1", retry_after=1.5),
    p.Pushed(results=[{"id": "x", "status": "applied"}], cursor=9),
    p.Changes(changes=[], cursor=9, has_more=False),
    p.Changed(cursor=10, changes=[{"kind": "message"}]),
    p.Pong(ref="x"),
]


@pytest.mark.parametrize("frame", SAMPLES, ids=lambda f: f.TYPE)
def test_round_trip(frame: p.Frame) -> None:
    text = p.dump_frame(frame)
    assert json.loads(text)["type"] == frame.TYPE
    assert p.parse_frame(text) == frame


def test_every_frame_type_has_a_sample() -> None:
    assert {f.TYPE for f in SAMPLES} == set(p.FRAME_TYPES)


def test_defaults_and_unknown_fields() -> None:
    frame = p.parse_frame('{"type": "send", "text": "hi", "future_field": 1}')
    assert frame == p.Send(text="hi")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", p.BAD_JSON),
        ("[1, 2]", p.BAD_FRAME),
        ('{"text": "hi"}', p.UNKNOWN_TYPE),
        ('{"type": "launch_missiles"}', p.UNKNOWN_TYPE),
        ('{"type": "send"}', p.BAD_FRAME),
        ('{"type": "send", "text": 5}', p.BAD_FRAME),
        ('{"type": "send", "text": "x", "message_id": "not-a-uuid"}', p.BAD_FRAME),
        ('{"type": "send", "text": "\\u0000"}', p.BAD_FRAME),
        ('{"type": "send", "text": "\\ud800"}', p.BAD_FRAME),
        (
            '{"type": "resume", "job_id": "' + FIXED_ID + '", "after": "abc"}',
            p.BAD_FRAME,
        ),
        ('{"type": "pull", "after": -1}', p.BAD_FRAME),
        ('{"type": "pull", "limit": 0}', p.BAD_FRAME),
        ('{"type": "pull", "after": true}', p.BAD_FRAME),
        ('{"type": "ping", "ref": "' + "x" * 100 + '"}', p.BAD_FRAME),
        ('{"type": "push", "changes": {}}', p.BAD_FRAME),
    ],
)
def test_bad_frames_raise_protocol_errors(raw: str, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        p.parse_frame(raw)
    assert info.value.code == code
    assert "\n" not in str(info.value)


def test_binary_frames_and_disallowed_types_are_refused() -> None:
    with pytest.raises(ProtocolError) as info:
        p.parse_frame(b'{"type": "ping"}')
    assert info.value.code == p.BAD_FRAME
    with pytest.raises(ProtocolError) as info:
        p.parse_frame(
            '{"type": "done", "job_id": "j", "attempt": 1, "entry": "1-0", '
            '"message": {}}',
            allowed=p.CLIENT_FRAMES,
        )
    assert info.value.code == p.UNKNOWN_TYPE


def test_deeply_nested_json_is_a_clear_error() -> None:
    with pytest.raises(ProtocolError):
        p.parse_frame("[" * 100_000 + "]" * 100_000)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from([*p.FRAME_TYPES, "nope", ""])},
    optional={
        name: json_values
        for name in (
            "text",
            "ref",
            "message_id",
            "job_id",
            "after",
            "limit",
            "changes",
            "token",
            "device",
            "day",
            "tz",
            "attempt",
            "entry",
            "message",
        )
    },
)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(frame_like, json_values))
def test_fuzzed_frames_parse_or_raise_protocol_error(data: object) -> None:
    raw = json.dumps(data)
    try:
        frame = p.parse_frame(raw)
    except ProtocolError as exc:
        assert exc.code in p.ERROR_CODES
    else:
        assert p.parse_frame(p.dump_frame(frame)) == frame


@settings(max_examples=200, deadline=None)
@given(raw=st.text(max_size=200) | st.binary(max_size=50))
def test_fuzzed_garbage(raw: str | bytes) -> None:
    try:
        p.parse_frame(raw)
    except ProtocolError as exc:
        assert exc.code in p.ERROR_CODES


def test_ref_of_a_broken_frame_is_only_echoed_when_valid() -> None:
    assert p.ref_of('{"type": "x", "ref": "abc"}') == "abc"
    assert p.ref_of('{"type": "x", "ref": "\\u0000"}') == ""
    assert p.ref_of('{"type": "x", "ref": "' + "r" * 65 + '"}') == ""
    assert p.ref_of("not json") == ""
