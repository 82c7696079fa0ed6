"""Device processes on one event loop: their tasks die together when one is killed.

A :class:`Process` runs its code in a ``contextvars`` context of its own;
every task started from there (the link's connection loop, the cubit's sync
loops, the store's flushes) carries the context, and the loop's task factory
(:func:`install`) files the task under its process. ``kill()`` cancels them
all at once, as SIGKILL ends every thread of a process.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Process", "install"]

T = TypeVar("T")

_CURRENT: contextvars.ContextVar[Process | None] = contextvars.ContextVar(
    "optisync_sim_process", default=None
)


class Process:
    """One run of a device's program."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dead = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self._context = contextvars.copy_context()
        self._context.run(_CURRENT.set, self)

    def __repr__(self) -> str:
        return f"Process({self.name!r}, dead={self.dead})"

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start ``coro`` as a task of this process."""
        return asyncio.get_running_loop().create_task(coro, context=self._context)

    def run(self, function: Callable[..., T], *args: Any) -> T:
        """Call ``function`` inside this process (the tasks it starts are its own)."""
        return self._context.run(function, *args)

    def kill(self) -> None:
        """Every task of the process stops where it is."""
        self.dead = True
        for task in list(self.tasks):
            task.cancel()


def _factory(
    loop: asyncio.AbstractEventLoop,
    coro: Coroutine[Any, Any, Any],
    context: contextvars.Context | None = None,
) -> asyncio.Task[Any]:
    task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, context=context)
    process = context.get(_CURRENT) if context is not None else _CURRENT.get()
    if process is not None:
        if process.dead:
            task.cancel()
        else:
            process.tasks.add(task)
            task.add_done_callback(process.tasks.discard)
    return task


def install(loop: asyncio.AbstractEventLoop) -> None:
    """File every task of ``loop`` under the process that started it."""
    loop.set_task_factory(_factory)  # type: ignore[arg-type]
