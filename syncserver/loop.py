"""Which event loop runs the server: uvloop when it is installed, else asyncio's.

uvloop (the ``uvloop`` extra, or ``pip install uvloop``) runs the same asyncio code on
libuv; the sync server's socket work (accepting, reading frames, writing
pushes) is where it helps. ``python -m syncserver --no-uvloop`` (or
``OPTISYNC_NO_UVLOOP=1``) keeps asyncio's own loop even when uvloop is
installed. Nothing else in optisync depends on which loop runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["loop_factory", "loop_name", "run"]

T = TypeVar("T")


def loop_factory(use_uvloop: bool = True) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` if asked for and installed; None for asyncio's."""
    if not use_uvloop or importlib.util.find_spec("uvloop") is None:
        return None
    import uvloop

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def loop_name(use_uvloop: bool = True) -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop :func:`run` would use."""
    return "asyncio" if loop_factory(use_uvloop) is None else "uvloop"


def run(main: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    """Run ``main`` to completion on a new loop (uvloop when asked for and installed)."""
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        return runner.run(main)
