"""What a client written from docs/protocol.md alone relies on (issue 12).

Each class is one defect a third-party client hit: re-sends, resumes,
`changed` frames, cursors, last-writer-wins and error wording.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed

from grizz_core import protocol as p
from grizz_core.domain import utc_now
from grizz_server.settings import ServerSettings
from tests.fakes.openai_server import FakeOpenAI, HttpError, Text, ToolCalls
from tests.server.conftest import Stack, start_stack, stop_stack
from tests.server.harness import Device

SLOW_REPLY = "one two three four five six seven eight"


def _slow(text: str = SLOW_REPLY) -> Text:
    """A reply that streams for a while (a chunk every 0.15 s)."""
    return Text(text, chunk=4, delay=0.15)


class TestResend:
    async def test_a_resend_while_the_reply_streams_does_not_repeat_it(
        self, stack: Stack, provider_env: FakeOpenAI
    ) -> None:
        provider_env.enqueue(_slow())
        device = await stack.device("alice")
        message_id = str(uuid.uuid4())
        first = await device.say("Hello?", message_id=message_id)
        await device.wait_for(lambda: device.replies.get(first.job_id))
        again = await device.say("Hello?", message_id=message_id)
        assert again.duplicate and again.job_id == first.job_id
        reply = await device.finished(first.job_id)
        assert reply.done is not None and reply.text == SLOW_REPLY
        entries = [
            f.entry
            for f in device.frames
            if isinstance(f, p.Chunk | p.Done) and f.job_id == first.job_id
        ]
        assert len(entries) == len(set(entries))  # each chunk once
        assert "".join(reply.chunks) == SLOW_REPLY
        await device.close()


class TestResume:
    async def test_not_found_names_the_job(self, stack: Stack) -> None:
        device = await stack.device("alice")
        job_id = str(uuid.uuid4())
        error = await device.request(p.Resume(job_id=job_id), p.Error)
        assert isinstance(error, p.Error) and error.code == p.NOT_FOUND
        assert error.job_id == job_id and error.entry == ""
        await device.close()

    async def test_a_resume_after_the_last_entry_gets_the_final_frame(
        self, stack: Stack, provider_env: FakeOpenAI
    ) -> None:
        provider_env.enqueue(Text("All done."))
        laptop = await stack.device("alice")
        accepted = await laptop.say("Hi")
        reply = await laptop.finished(accepted.job_id)
        assert reply.done is not None
        await laptop.close()
        for after in (reply.done.entry, "99999999999999-0"):
            device = await stack.device("alice")
            await device.send_frame(p.Resume(job_id=accepted.job_id, after=after))
            final = await device.wait_for(lambda d=device: d.frame(p.Done))
            assert final == reply.done
            assert not any(isinstance(f, p.Chunk) for f in device.frames)
            await device.close()

    async def test_a_resume_after_a_failed_jobs_last_entry_gets_its_error(
        self, stack: Stack, provider_env: FakeOpenAI
    ) -> None:
        provider_env.enqueue(HttpError(401, "bad key", times=100))
        laptop = await stack.device("alice")
        accepted = await laptop.say("Hi")
        reply = await laptop.finished(accepted.job_id)
        assert reply.error is not None and reply.error.code == p.JOB_FAILED
        await laptop.close()
        device = await stack.device("alice")
        await device.send_frame(
            p.Resume(job_id=accepted.job_id, after=reply.error.entry)
        )
        final = await device.wait_for(
            lambda: device.frame(p.Error, job_id=accepted.job_id)
        )
        assert final == reply.error
        await device.close()


def _changed_rows(device: Device) -> dict[tuple[str, str], dict[str, Any]]:
    """Every row the device got in `changed` frames, by (entity, id)."""
    return {
        (c["entity"], c["id"]): c
        for f in device.frames
        if isinstance(f, p.Changed)
        for c in f.changes
    }


def _note(note_id: str, content: str) -> dict[str, Any]:
    now = utc_now()
    return {
        "entity": "memory",
        "id": note_id,
        "data": {"content": content, "created_at": now, "updated_at": now},
    }


class TestChanged:
    async def test_a_send_announces_its_new_day_to_every_device(
        self, stack: Stack, provider_env: FakeOpenAI
    ) -> None:
        provider_env.enqueue(Text("Hello!"))
        laptop = await stack.device("alice")
        phone = await stack.device("alice")
        accepted = await laptop.say("First of the day")
        conv = ("conversations", accepted.conversation_id)
        await phone.wait_for(lambda: conv in _changed_rows(phone))
        seen = _changed_rows(phone)
        assert seen[conv]["data"]["day"] == accepted.message["created_at"][:10]
        assert seen[("messages", accepted.message_id)]["data"] == accepted.message
        # the sender gets the new day too (`accepted` carries only the message)
        await laptop.wait_for(lambda: conv in _changed_rows(laptop))
        assert ("messages", accepted.message_id) not in _changed_rows(laptop)
        store = stack.store.for_user(stack.user_ids["alice"])
        pulled, _, _ = await store.pull(0)
        assert {c["id"]: c for c in pulled}[conv[1]] == _changed_rows(laptop)[conv]
        for device in (laptop, phone):
            await device.close()

    async def test_a_push_announces_the_rows_it_applied(self, stack: Stack) -> None:
        laptop = await stack.device("alice")
        phone = await stack.device("alice")
        pushed = await laptop.request(
            p.Push(changes=[_note("n1", "likes tea"), _note("n2", "x")]), p.Pushed
        )
        assert isinstance(pushed, p.Pushed)
        await phone.wait_for(lambda: ("memory", "n2") in _changed_rows(phone))
        rows = _changed_rows(phone)
        assert rows[("memory", "n1")]["data"]["content"] == "likes tea"
        changed = phone.frame(p.Changed)
        assert changed.cursor == pushed.cursor
        assert [c["seq"] for c in changed.changes] == [
            pushed.cursor - 1,
            pushed.cursor,
        ]
        # a push that changes nothing announces nothing
        again = await laptop.request(p.Push(changes=[changed.changes[0]]), p.Pushed)
        assert [r["status"] for r in again.results] == ["unchanged"]
        for device in (laptop, phone):
            await device.close()

    async def test_a_note_grizz_remembers_is_announced(
        self, stack: Stack, provider_env: FakeOpenAI
    ) -> None:
        provider_env.enqueue(ToolCalls([("remember", {"content": "Likes tea"})]))
        provider_env.enqueue(Text("Noted!"))
        laptop = await stack.device("alice")
        phone = await stack.device("alice")
        accepted = await laptop.say("Remember that I like tea")
        for device in (laptop, phone):
            await device.wait_for(
                lambda d=device: any(
                    e == "memory"
                    for e, _ in _changed_rows(d)  # type: ignore[misc]
                )
            )
            notes = [c for (e, _), c in _changed_rows(device).items() if e == "memory"]
            assert [n["data"]["content"] for n in notes] == ["Likes tea"]
        reply = await laptop.finished(accepted.job_id)
        assert reply.done is not None
        for device in (laptop, phone):
            await device.close()

    async def test_a_failed_replys_row_is_announced(
        self, stack: Stack, provider_env: FakeOpenAI
    ) -> None:
        provider_env.enqueue(HttpError(401, "bad key", times=100))
        laptop = await stack.device("alice")
        phone = await stack.device("alice")
        accepted = await laptop.say("Hi")
        reply = ("messages", accepted.reply_id)
        for device in (laptop, phone):
            await device.wait_for(lambda d=device: reply in _changed_rows(d))
            row = _changed_rows(device)[reply]
            assert row["data"]["status"] == "error"
        for device in (laptop, phone):
            await device.close()

    async def test_rows_that_do_not_fit_a_frame_are_left_for_pull(
        self, server_settings: ServerSettings, provider_env: FakeOpenAI
    ) -> None:
        settings = dataclasses.replace(server_settings, max_frame_bytes=16_384)
        running = await start_stack(settings)
        try:
            laptop = await running.device("alice")
            phone = await running.device("alice")
            # small notes: the push fits a frame, the stored rows (with every
            # field and a seq) do not
            notes = [
                {
                    "entity": "memory",
                    "id": f"n{i}",
                    "data": {"content": "x", "created_at": "2026-12-04T20:00Z"},
                }
                for i in range(120)
            ]
            assert len(p.dump_frame(p.Push(changes=notes))) < 16_384
            pushed = await laptop.request(p.Push(changes=notes), p.Pushed)
            assert [r["status"] for r in pushed.results] == ["applied"] * 120
            changed = await phone.wait_for(lambda: phone.frame(p.Changed))
            assert changed == p.Changed(cursor=pushed.cursor, changes=[])
            for device in (laptop, phone):
                await device.close()
        finally:
            await stop_stack(running)


class TestPush:
    async def test_a_losing_edit_is_superseded(self, stack: Stack) -> None:
        device = await stack.device("alice")
        newer = _note("n1", "newer")
        older = {
            **newer,
            "data": {
                "content": "older",
                "created_at": "2026-01-01T00:00:00+00:00",
                "updated_at": "2026-01-01T00:00:00+00:00",
            },
        }
        await device.request(p.Push(changes=[newer]), p.Pushed)
        lost = await device.request(p.Push(changes=[older]), p.Pushed)
        assert isinstance(lost, p.Pushed)
        assert lost.results == [
            {
                "id": "n1",
                "entity": "memory",
                "status": "superseded",
                "updated_at": newer["data"]["updated_at"],
            }
        ]
        await device.close()

    async def test_a_far_future_time_is_clamped_to_the_servers_clock(
        self, stack: Stack
    ) -> None:
        device = await stack.device("alice")
        future = {
            "entity": "memory",
            "id": "n1",
            "data": {"content": "x", "created_at": "2099-01-01T00:00:00+00:00"},
        }
        pushed = await device.request(p.Push(changes=[future]), p.Pushed)
        assert [r["status"] for r in pushed.results] == ["applied"]
        pulled = await device.request(p.Pull(), p.Changes)
        assert pulled.changes[0]["data"]["updated_at"] < "2027"
        await device.close()

    async def test_text_that_is_not_unicode_is_one_human_sentence(
        self, stack: Stack
    ) -> None:
        device = await stack.device("alice")
        await device.send_raw(
            '{"type":"push","ref":"u","changes":[{"entity":"memory","id":"n1",'
            '"data":{"content":"\\ud800","created_at":"2026-12-04T20:00Z"}}]}'
        )
        error = await device.wait_for(lambda: device.frame(p.Error, ref="u"))
        assert error.code == p.BAD_CHANGE
        assert "codec" not in error.message and "\\u" not in error.message
        assert error.message.endswith(".") and error.message.count(". ") == 0
        await device.close()

    async def test_a_database_failure_is_internal_not_bad_change(
        self, stack: Stack
    ) -> None:
        device = await stack.device("alice")
        path = stack.settings.db_url.removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("DROP TABLE memory")  # the database now fails every note
            db.commit()
        answer = await device.request(p.Push(changes=[_note("n1", "x")]), p.Pushed)
        assert isinstance(answer, p.Error) and answer.code == p.INTERNAL
        assert "database" in answer.message
        await device.close()


class TestPull:
    async def test_a_cursor_past_2_63_is_clamped_not_internal(
        self, stack: Stack
    ) -> None:
        device = await stack.device("alice")
        await device.request(p.Push(changes=[_note("n1", "x")]), p.Pushed)
        for after in (2**63, 2**64 + 5):
            answer = await device.request(p.Pull(after=after), p.Changes)
            assert answer == p.Changes(changes=[], cursor=1, ref=answer.ref)
        await device.close()


class TestCloseCodes:
    async def test_text_that_is_not_utf8_closes_with_1007(self, stack: Stack) -> None:
        device = await stack.device("alice")
        assert device.ws is not None
        await device.ws.send(b'{"type":"ping","ref":"\xff"}', text=True)
        await device.wait_for(lambda: device.closed is not None)
        assert isinstance(device.closed, ConnectionClosed)
        assert device.closed.rcvd is not None and device.closed.rcvd.code == 1007


class TestWelcome:
    async def test_the_limits_are_the_settings_under_their_own_names(
        self, stack: Stack
    ) -> None:
        device = await stack.device("alice")
        welcome = await device.wait_for(lambda: device.frame(p.Welcome))
        assert welcome.limits  # a device sizes its pushes and pings by them
        for name, value in welcome.limits.items():
            assert getattr(stack.settings, name) == value, name
        await device.close()
