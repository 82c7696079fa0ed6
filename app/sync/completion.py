"""The awaitable a sync call returns: the end of its key's sync loop."""

from __future__ import annotations

import asyncio
from collections.abc import Generator, Hashable
from typing import Any

__all__ = ["SyncCompletion"]


class SyncCompletion:
    """Awaitable end of a key's sync loop; raises that loop's error.

    Awaiting it never cancels the loop, and a caller that never awaits it loses
    nothing: errors also reach ``on_finish``.
    """

    __slots__ = ("_task", "key")

    def __init__(self, key: Hashable, task: asyncio.Task[None]) -> None:
        self.key = key
        self._task = task
        task.add_done_callback(_mark_retrieved)

    def done(self) -> bool:
        return self._task.done()

    def __await__(self) -> Generator[Any, None, None]:
        return asyncio.shield(self._task).__await__()


def _mark_retrieved(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # delivered through on_finish and awaiters; silence asyncio's warning
