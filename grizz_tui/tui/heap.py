"""Keeping the garbage collector's full passes off the screen's hot path.

A page with ten long replies is ~500,000 Python objects (widgets, styles,
rendered lines). A full (generation 2) collection walks every one of them:
0.1-0.45 s with the screen frozen, at moments set by allocation, i.e. in
the middle of the next streamed reply. What is on the page once a day is
shown, or a reply has finished, lives as long as the page: `settle()` moves
it out of the collector's reach (`gc.freeze`), so collections walk only what
is new. `release()` hands it back (the page is being replaced, the app
ends), so what the old page leaves behind is collected as usual, and
`before_exit()` spares the interpreter's shutdown its collections.

Must not import: textual, the store or the core.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect the young garbage, then exempt everything alive from full passes."""
    gc.collect(1)
    gc.freeze()


def release() -> None:
    """Make every object collectable again (the page goes away)."""
    gc.unfreeze()


def before_exit() -> None:
    """The app is over and the process ends: nothing needs collecting.

    The interpreter's shutdown runs full collections over every object left
    (1.1 s after a page of ten long replies, most of the time to quit).
    """
    gc.freeze()
