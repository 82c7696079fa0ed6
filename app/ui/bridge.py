"""The Qt bridge of one device: a QObject over a Qt-free ``DeviceSession``.

Widgets get a :class:`DeviceBridge` and nothing else: it turns the cubit's
states, the link's connection status and the core's sync events into Qt
signals (emitted only when something changed) and forwards taps back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from app.link import (
    DEFAULT_SPACE,
    CatalogueItem,
    ConnectionStatus,
    DeviceSession,
    LikesState,
    like_key,
)
from app.sync import RequestSent, SyncEvent

from .directory import DeviceDirectory
from .timeline import TimelineEntry, describe, item_id_of, value_words

__all__ = ["DeviceBridge", "TapStats"]


@dataclass(frozen=True, slots=True)
class TapStats:
    """How much coalescing saved since the last reset.

    ``resends`` are requests that carried no tap of this run: a choice saved
    by an earlier run (or held while offline) sent again. They are counted
    apart so the ratio speaks of taps only.
    """

    taps: int = 0
    requests: int = 0
    resends: int = 0

    @property
    def ratio(self) -> float | None:
        """Taps per request that carried taps; None before any."""
        carrying = self.requests - self.resends
        return self.taps / carrying if carrying > 0 and self.taps else None


class DeviceBridge(QObject):
    """One device as signals and properties; see the module docstring."""

    stateChanged = Signal(object)
    statusChanged = Signal(object)
    statsChanged = Signal(object)
    eventLogged = Signal(object)
    syncEvent = Signal(object)
    closed = Signal()

    def __init__(
        self,
        session: DeviceSession,
        directory: DeviceDirectory,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._session = session
        self._directory = directory
        directory.add(session.device_id, session.name)
        self._named_id = session.device_id
        self._state: LikesState = session.cubit.state
        self._status: ConnectionStatus = session.status
        self._stats = TapStats()
        self._tapped: set[str] = set()  # keys tapped since their last request
        self._waiting: dict[str, str] = {}  # key -> words, for requests held while offline
        self._closing = False
        self._unsubscribe: list[Callable[[], None]] = [
            session.cubit.subscribe(self._on_state),
            session.subscribe_status(self._on_status),
            session.cubit.device.subscribe(self._on_event),
        ]

    @classmethod
    async def open(
        cls,
        name: str,
        server_urls: Sequence[str],
        directory: DeviceDirectory,
        *,
        data_dir: Path | None = None,
        catalogue: Sequence[CatalogueItem] | None = None,
        request_timeout: float = 10.0,
        token: str | None = None,
        cafile: Path | None = None,
        space: str = DEFAULT_SPACE,
    ) -> DeviceBridge:
        """Open (or reopen, with its persisted state) the device called ``name`` in
        ``space``; ``token`` and ``cafile`` are the server's token and the CAs for
        ``wss://``."""
        session = await DeviceSession.open(
            name,
            list(server_urls),
            data_dir=data_dir,
            catalogue=catalogue,
            request_timeout=request_timeout,
            token=token,
            cafile=cafile,
            space=space,
        )
        return cls(session, directory)

    # -- what widgets read -----------------------------------------------------------

    @property
    def name(self) -> str:
        return self._session.name

    @property
    def space(self) -> str:
        """The space this device joined: it sees the writes of this space only."""
        return self._session.space

    @property
    def device_id(self) -> int:
        return self._session.device_id

    @property
    def session(self) -> DeviceSession:
        """The device this bridge shows."""
        return self._session

    @property
    def state(self) -> LikesState:
        return self._state

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    @property
    def directory(self) -> DeviceDirectory:
        return self._directory

    def busy(self) -> bool:
        """Whether any request of this device is on its way to the server."""
        return bool(self._session.cubit.device.in_flight_keys())

    def device_name(self, device_id: int | None) -> str:
        return self._directory.name(device_id)

    @property
    def stats(self) -> TapStats:
        return self._stats

    def reset_stats(self) -> None:
        """Start counting taps and requests afresh."""
        self._stats = TapStats()
        self._tapped.clear()
        self.statsChanged.emit(self._stats)

    # -- what widgets do ---------------------------------------------------------------

    @Slot(str)
    def toggle_like(self, item_id: str) -> None:
        """Tap a heart: the new value is in ``stateChanged`` before this returns."""
        if not self._closing:
            self._tapped.add(like_key(item_id))
            stats = self._stats
            self._stats = TapStats(stats.taps + 1, stats.requests, stats.resends)
            self._session.toggle_like(item_id)
            self.statsChanged.emit(self._stats)

    async def close(self) -> None:
        """Stop listening and close the session (its state is already persisted)."""
        if self._closing:
            return
        self._closing = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        await self._session.close()
        self.closed.emit()

    # -- from the session --------------------------------------------------------------

    def _on_state(self, state: LikesState) -> None:
        if state is self._state or state == self._state:
            return
        self._state = state
        self.stateChanged.emit(state)

    def _on_status(self, status: ConnectionStatus) -> None:
        if self._session.device_id != self._named_id:
            # The link took a new id (ours was claimed): name its writes after this device.
            self._named_id = self._session.device_id
            self._directory.add(self._named_id, self._session.name)
        if status == self._status:
            return
        previous, self._status = self._status, status
        self.statusChanged.emit(status)
        if status.state != previous.state:
            self.eventLogged.emit(_link_entry(status, self.space))
            if status.state == "online" and self._waiting:
                waiting, self._waiting = self._waiting, {}
                for key, words in waiting.items():
                    self.eventLogged.emit(
                        TimelineEntry(
                            time.time(),
                            item_id_of(key),
                            "sent",
                            f"Back online: sent {words} that waited for the connection",
                        )
                    )

    def _on_event(self, event: SyncEvent) -> None:
        online = self._status.state == "online"
        if isinstance(event, RequestSent):
            key = str(event.key)
            stats = self._stats
            resend = key not in self._tapped and not event.follow_up
            self._tapped.discard(key)
            self._stats = TapStats(stats.taps, stats.requests + 1, stats.resends + int(resend))
            self.statsChanged.emit(self._stats)
            if not online:
                self._waiting[key] = (
                    f"{value_words(event.value)} (local rev {event.local_revision})"
                )
        self.syncEvent.emit(event)
        self.eventLogged.emit(describe(event, self._directory.name, self.device_id, online=online))


def _link_entry(status: ConnectionStatus, space: str) -> TimelineEntry:
    text = {
        "online": f"Online and caught up with {status.url or 'the server'} in space {space!r}",
        "connecting": f"Connecting to {status.url or 'the server'}…",
        "offline": "Offline: taps are kept and sent when the connection is back",
    }
    return TimelineEntry(time.time(), None, "link", text.get(status.state, status.state))
