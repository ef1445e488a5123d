"""`run_app()`: what `grizz` (no subcommand) calls. Returns the exit code.

Expected failures (a bad config file, an unusable terminal) print one line
`grizz: …` on stderr; no traceback reaches the user.

`GRIZZ_STARTUP_PROBE=<file>` makes the app write the modules loaded at its
first frame (JSON) to <file> and quit: the start-up import test and the
benchmark use it.

Must not import: httpx, the store or the core (and only `launch` imports the app).
"""

from __future__ import annotations

import json
import os
import sys
import time

_STARTED = time.perf_counter()


def run_app() -> int:
    """Open the app on today's conversation; return the process exit code."""
    from grizz_core.errors import GrizzError
    from grizz_tui.config import load_settings

    try:
        settings = load_settings()
    except GrizzError as exc:
        print(f"grizz: {exc}", file=sys.stderr)
        return exc.exit_code
    for warning in settings.warnings:
        print(f"grizz: {warning}", file=sys.stderr)
    from grizz_tui.tui.app import GrizzApp, make_app

    probe = os.environ.get("GRIZZ_STARTUP_PROBE")

    def write_probe(app: GrizzApp) -> None:
        if probe:
            data = {
                "seconds": time.perf_counter() - _STARTED,
                "modules": sorted(sys.modules),
            }
            with open(probe, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
            app.exit(0)

    app = make_app(settings, on_first_frame=write_probe if probe else None)
    from grizz_tui.tui import heap

    try:
        code = app.run()
    except GrizzError as exc:
        print(f"grizz: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        heap.before_exit()
    return app.return_code or (code or 0)
