"""Waiting on conditions (never on the clock) and auditing status honesty."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from app.link import Backoff, CatalogueItem, DeviceSession, SyncPhase, like_key
from tests.timeouts import TIMEOUT

CATALOGUE = tuple(
    CatalogueItem(name, name.title(), f"{name}.svg") for name in ("tea", "jam", "fig")
)
FAST = Backoff(initial=0.02, maximum=0.2)
"""Reconnect quickly: tests wait on conditions, not on backoff delays."""

OpenDevice = Callable[..., Awaitable[DeviceSession]]

Subscribe = Callable[[Callable[..., None]], Callable[[], None]]


async def eventually(condition: Callable[[], bool], *sessions: DeviceSession) -> None:
    """Wait until ``condition()`` holds, re-checking whenever a session's state,
    events or connection status change; fail after TIMEOUT."""
    changed = asyncio.Event()

    def poke(*_: object) -> None:
        changed.set()

    unsubscribes = []
    for session in sessions:
        unsubscribes += [
            session.cubit.subscribe(poke),
            session.cubit.device.subscribe(poke),
            session.subscribe_status(poke),
            session.client.newest_seen.subscribe(poke),
        ]
    try:
        async with asyncio.timeout(TIMEOUT):
            while not condition():
                await changed.wait()
                changed.clear()
    finally:
        for unsubscribe in unsubscribes:
            unsubscribe()


class StatusAudit:
    """Records every status a device shows and flags a "synced" that is not true."""

    def __init__(self, session: DeviceSession) -> None:
        self.session = session
        self.phases: dict[str, list[SyncPhase]] = {}
        self.violations: list[str] = []
        session.cubit.subscribe(self._check)

    def _check(self, state: object) -> None:
        state = self.session.cubit.state
        device = self.session.cubit.device
        for item in state.items:
            status = state.status(item.id)
            seen = self.phases.setdefault(item.id, [])
            if not seen or seen[-1] is not status.phase:
                seen.append(status.phase)
            if status.phase is SyncPhase.SYNCED and (
                device.in_flight(like_key(item.id)) or item.id in state.intents
            ):
                self.violations.append(f"{item.id} shown synced with work pending")
