"""Run the real app headless in a subprocess and send one message.

`python -m tests.tui.app_driver "text"`: used by the crash test, which kills
this process with SIGKILL mid-reply. Prints `sent` once the message is off.
"""

from __future__ import annotations

import sys

from textual import events

from grizz_tui.tui.app import GrizzApp, make_app


def main() -> None:
    text = sys.argv[1]
    app = make_app(animate=False)

    async def send_when_ready() -> None:
        import asyncio

        while not app.chat.day:
            await asyncio.sleep(0.02)
        app.chat.composer.insert(text)
        app.chat.composer.post_message(events.Key("enter", None))
        print("sent", flush=True)

    def ready(app_: GrizzApp) -> None:
        app_.run_worker(send_when_ready())

    app.on_first_frame = ready
    app.run(headless=True)


if __name__ == "__main__":
    main()
