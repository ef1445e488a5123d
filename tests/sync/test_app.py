"""The app in server mode: a pilot `grizz` app logged in to a real in-process
server (gateway, worker, Redis, SQLite, the fake provider), next to another
device of the same user that speaks the raw protocol."""

from __future__ import annotations

import uuid
from pathlib import Path

from textual.message import Message as TextualMessage
from textual.notifications import Notify
from textual.pilot import Pilot

from grizz_core import protocol as p
from grizz_tui.tui.app import GrizzApp, make_app
from grizz_tui.tui.sync_link import PENDING_MARK
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.server.conftest import Stack
from tests.server.harness import Device
from tests.sync.conftest import Home, start_gateway, stop_gateway
from tests.tui.helpers import (
    screen_text,
    shown,
    type_and_send,
    wait_ready,
    wait_shown,
    wait_until,
)


async def _logged_in(stack: Stack, grizz_home: Path) -> Home:
    home = Home(grizz_home)
    await home.login(stack.url, stack.tokens["alice"])
    return home


async def _connected(pilot: Pilot[int]) -> GrizzApp:
    app = await wait_ready(pilot)
    await wait_until(
        pilot, lambda: app.chat.status.connection == "connected", what="connected"
    )
    return app


async def _server_messages(stack: Stack, home: Home) -> list[tuple[str, str, str]]:
    server = stack.store.for_user(stack.user_ids["alice"])
    found = []
    for row in home.rows("SELECT DISTINCT conversation_id FROM messages"):
        for m in await server.recent_messages(row["conversation_id"], limit=50):
            found.append((str(m.role), m.content, str(m.status)))
    return sorted(found)


def _notices(seen: list[TextualMessage]) -> list[str]:
    return [m.notification.message for m in seen if isinstance(m, Notify)]


class TestSendThroughTheServer:
    async def test_the_reply_streams_in_and_the_other_device_sees_it_live(
        self, stack: Stack, grizz_home: Path, provider_env: FakeOpenAI
    ) -> None:
        home = await _logged_in(stack, grizz_home)
        other = await stack.device()
        provider_env.enqueue(Text("Hello from the server, friend!", chunk=4))
        app = make_app(animate=False)
        async with app.run_test() as pilot:
            await _connected(pilot)
            await type_and_send(pilot, "Hi from the app")
            await wait_shown(pilot, "Hello from the server, friend!")
            await wait_until(pilot, lambda: not app.chat.replying, what="reply end")
            assert shown(app) == [
                ("user", "complete", "Hi from the app"),
                ("assistant", "complete", "Hello from the server, friend!"),
            ]
        assert len(provider_env.requests) == 1  # the server's worker answered
        reply = await other.wait_for(
            lambda: next((r for r in other.replies.values() if r.done), None)
        )
        assert reply.text == "Hello from the server, friend!"
        assert any(isinstance(f, p.Job) for f in other.frames)
        local = home.rows("SELECT role, content, status FROM messages ORDER BY role")
        assert [tuple(r.values()) for r in local] == [
            ("assistant", "Hello from the server, friend!", "complete"),
            ("user", "Hi from the app", "complete"),
        ]
        assert home.rows("SELECT * FROM pending_sends") == []
        assert await _server_messages(stack, home) == sorted(
            tuple(r.values()) for r in local
        )
        await other.close()


class TestAnotherDevice:
    async def test_its_exchange_streams_in_live_with_a_notice(
        self, stack: Stack, grizz_home: Path, provider_env: FakeOpenAI
    ) -> None:
        home = await _logged_in(stack, grizz_home)
        seen: list[TextualMessage] = []
        provider_env.enqueue(Text("Streaming to every device.", chunk=2, delay=0.03))
        app = make_app(animate=False)
        async with app.run_test(message_hook=seen.append) as pilot:
            await _connected(pilot)
            phone = await stack.device()
            await phone.send_frame(
                p.Send(
                    text="Hi from the phone",
                    message_id=str(uuid.uuid4()),
                    day=app.chat.today,
                )
            )
            await wait_shown(pilot, "Hi from the phone")
            await wait_until(
                pilot,
                lambda: ("assistant", "streaming") in [s[:2] for s in shown(app)],
                what="the reply streaming in",
            )
            await wait_until(
                pilot,
                lambda: (
                    ("assistant", "complete", "Streaming to every device.")
                    in shown(app)
                ),
                what="the reply done",
            )
            assert [s[0] for s in shown(app)] == ["user", "assistant"]
            await phone.close()
        assert any("another device" in n for n in _notices(seen))
        local = home.rows("SELECT role, content, status FROM messages ORDER BY role")
        assert [tuple(r.values()) for r in local] == [
            ("assistant", "Streaming to every device.", "complete"),
            ("user", "Hi from the phone", "complete"),
        ]

    async def test_a_deletion_elsewhere_leaves_the_screen(
        self, stack: Stack, grizz_home: Path, provider_env: FakeOpenAI
    ) -> None:
        await _logged_in(stack, grizz_home)
        provider_env.enqueue(Text("Soon gone."))
        app = make_app(animate=False)
        async with app.run_test() as pilot:
            await _connected(pilot)
            await type_and_send(pilot, "delete me later")
            await wait_shown(pilot, "Soon gone.")
            await wait_until(pilot, lambda: not app.chat.replying, what="reply end")
            user = app.chat.conversation.views[0].message
            phone = await stack.device()
            gone = {**user.to_dict(), "deleted": True}
            await phone.send_frame(
                p.Push(changes=[{"entity": "messages", "id": user.id, "data": gone}])
            )
            pushed = await phone.wait_for(
                lambda: next((f for f in phone.frames if isinstance(f, p.Pushed)), None)
            )
            assert pushed.results[0]["status"] == "applied", pushed
            await wait_until(
                pilot,
                lambda: app.chat.conversation.view_of(user.id) is None,
                what="the deleted message to leave",
            )
            await phone.close()


class TestServerAway:
    async def test_pending_mark_then_delivered_exactly_once(
        self, stack: Stack, grizz_home: Path, provider_env: FakeOpenAI
    ) -> None:
        home = await _logged_in(stack, grizz_home)
        assert (
            await home.grizz("config", "set", "sync.fallback", "false")
        ).exit_code == 0
        port = await stop_gateway(stack)
        app = make_app(animate=False)
        async with app.run_test() as pilot:
            await wait_ready(pilot)
            await wait_until(
                pilot,
                lambda: "reconnecting in" in app.chat.status.connection,
                what="reconnecting",
            )
            await type_and_send(pilot, "are you there?")
            await wait_shown(pilot, PENDING_MARK)
            await wait_until(
                pilot,
                lambda: "offline, 1 pending" in app.chat.status.connection,
                what="1 pending",
            )
            # offline, the status bar names the direct provider, not the server
            assert not app.chat.status.provider.startswith("server")
            assert provider_env.requests == []  # nobody answered it directly
            provider_env.enqueue(Text("Back again!"))
            await start_gateway(stack, port)
            app.chat.link.reconnect_now()
            await wait_shown(pilot, "Back again!")
            await wait_until(pilot, lambda: PENDING_MARK not in screen_text(app))
            assert app.chat.status.connection == "connected"
            # who answers: the server (its host), while connected
            host = stack.url.removeprefix("ws://").rstrip("/")
            assert app.chat.status.provider == f"server · {host}"
            # another reconnect sends nothing again
            port = await stop_gateway(stack)
            await start_gateway(stack, port)
            app.chat.link.reconnect_now()
            await _connected(pilot)
        assert len(provider_env.requests) == 1
        assert home.rows("SELECT * FROM pending_sends") == []
        assert await _server_messages(stack, home) == [
            ("assistant", "Back again!", "complete"),
            ("user", "are you there?", "complete"),
        ]

    async def test_with_a_provider_it_answers_directly_and_pushes_both_later(
        self, stack: Stack, grizz_home: Path, provider_env: FakeOpenAI
    ) -> None:
        home = await _logged_in(stack, grizz_home)
        port = await stop_gateway(stack)
        provider_env.enqueue(Text("Answered on this device."))
        app = make_app(animate=False)
        async with app.run_test() as pilot:
            await wait_ready(pilot)
            await wait_until(
                pilot, lambda: "reconnecting" in app.chat.status.connection
            )
            await type_and_send(pilot, "offline question")
            await wait_shown(pilot, "Answered on this device.")
            assert PENDING_MARK not in screen_text(app)
            await start_gateway(stack, port)
            app.chat.link.reconnect_now()
            await _connected(pilot)
            await wait_until(
                pilot,
                lambda: not home.rows("SELECT * FROM outbox"),
                what="the outbox pushed",
            )
        assert len(provider_env.requests) == 1
        assert await _server_messages(stack, home) == [
            ("assistant", "Answered on this device.", "complete"),
            ("user", "offline question", "complete"),
        ]


class TestCatchUp:
    async def test_new_rows_appear_after_the_first_frame(
        self, stack: Stack, grizz_home: Path, provider_env: FakeOpenAI
    ) -> None:
        from grizz_core import days

        await _logged_in(stack, grizz_home)
        phone: Device = await stack.device()
        provider_env.enqueue(Text("Said while you were away."))
        await phone.send_frame(
            p.Send(
                text="while the laptop slept",
                message_id=str(uuid.uuid4()),
                day=days.today(),
            )
        )
        await phone.wait_for(lambda: any(r.done for r in phone.replies.values()))
        await phone.close()
        at_first_frame: list[object] = []
        app = make_app(
            animate=False,
            on_first_frame=lambda a: at_first_frame.append(a.chat.link.state),
        )
        async with app.run_test() as pilot:
            await wait_shown(pilot, "Said while you were away.")
            assert [s[:2] for s in shown(app)] == [
                ("user", "complete"),
                ("assistant", "complete"),
            ]
        assert at_first_frame == [None]  # the network had not been touched yet
