"""The device store of the simulation: in memory, flushed a little after each change."""

from __future__ import annotations

import asyncio
from typing import Any

from app.link.store import MemoryStore, StoredState
from syncserver.protocol import DEFAULT_SPACE

from .processes import Process

__all__ = ["SimStore"]


class SimStore(MemoryStore):
    """A device's store: every change reaches the durable state ``delay`` later, as
    the state file's writer thread does; what a kill finds unflushed is lost."""

    def __init__(
        self,
        name: str,
        durable: StoredState | None,
        delay: float,
        *,
        space: str = DEFAULT_SPACE,
    ) -> None:
        super().__init__(name, durable, space=space)
        self.delay = delay
        self.process: Process | None = None
        """The process whose flushes these are; they die with it."""
        self._timer: asyncio.TimerHandle | None = None

    def _soon(self) -> None:
        if self._timer is None and self.process is not None and not self.process.dead:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self._flush_now)

    def _flush_now(self) -> None:
        self._timer = None
        if self.process is not None and not self.process.dead:
            self.process.spawn(self.flush())

    def abandon(self) -> None:
        """The process died: nothing more reaches the durable state."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def put_device_id(self, device_id: int) -> None:
        super().put_device_id(device_id)
        self._soon()

    def put_device_secret(self, secret: str) -> None:
        super().put_device_secret(secret)
        self._soon()

    def put_newest_seen(self, revision: int) -> None:
        super().put_newest_seen(revision)
        self._soon()

    def put_epoch(self, epoch: str | None) -> None:
        super().put_epoch(epoch)
        self._soon()

    def put_value(self, key: str, value: Any, server_revision: int) -> None:
        super().put_value(key, value, server_revision)
        self._soon()

    def put_intent(self, key: str, intent: Any) -> None:
        super().put_intent(key, intent)
        self._soon()
