"""Feeds the sequence diagram: every device bridge's core events and the server's feed.

One :class:`SequenceRecorder` per demo; every diagram view (the server window's
tab, the standalone window) paints its model and repaints on ``changed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
from PySide6.QtCore import QObject, Signal

from app.link import ConnectionStatus, LikesState, item_id_of
from app.sync import PushApplied, SyncEvent
from syncserver import ServerState

from .bridge import DeviceBridge
from .directory import DeviceDirectory
from .sequence import SequenceModel
from .server_bridge import ServerBridge

__all__ = ["SequenceRecorder"]


def _decode(raw: object) -> object:
    if isinstance(raw, msgspec.Raw):
        return msgspec.json.decode(bytes(raw))
    return raw


class SequenceRecorder(QObject):
    """Owns the diagram's model and keeps it fed; ``changed`` after every change."""

    changed = Signal()

    def __init__(
        self,
        directory: DeviceDirectory,
        parent: QObject | None = None,
        *,
        title_of: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = SequenceModel(directory.name, title_of=title_of)

    def watch_device(self, bridge: DeviceBridge) -> None:
        """A lane for the device; its events from now on."""
        self.model.add_lane(bridge.device_id, bridge.name, bridge.space)
        device_id = bridge.device_id

        unknown: dict[str, int] = {}  # pushes applied, whose value the state will show

        def learn_values(state: LikesState) -> None:
            # Push events carry no value and a process without the server's feed has
            # no other source: the applied push's value is the one the state shows at
            # that revision.
            for key, revision in list(unknown.items()):
                item_id = item_id_of(key)
                if item_id is None or item_id not in state.positions:
                    del unknown[key]
                elif state.revision(item_id) >= revision:
                    del unknown[key]
                    if state.revision(item_id) == revision:
                        self.model.learn_value(key, revision, state.liked(item_id))
                        self.changed.emit()

        def on_event(event: SyncEvent) -> None:
            self.model.feed(event, time.monotonic())
            if isinstance(event, PushApplied) and event.from_device_id != device_id:
                unknown[str(event.key)] = event.server_revision
                learn_values(bridge.state)
            self.changed.emit()

        def on_status(status: ConnectionStatus) -> None:
            self.model.set_online(device_id, status.state == "online", time.monotonic())
            self.changed.emit()

        bridge.syncEvent.connect(on_event)
        bridge.stateChanged.connect(learn_values)
        bridge.statusChanged.connect(on_status)
        on_status(bridge.status)

    def watch_server(self, server: ServerBridge) -> None:
        """Commits from the server's observer feed."""

        baseline = [True]

        def on_state(state: ServerState) -> None:
            before = self.model.revision
            self.model.server_writes(
                (
                    (
                        entry.key,
                        _decode(entry.value),
                        entry.server_revision,
                        entry.device_id or None,
                        entry.local_revision or None,
                        entry.space,
                    )
                    for entry in state.values
                ),
                time.monotonic(),
                baseline=baseline[0],
            )
            baseline[0] = False
            if self.model.revision != before:
                self.changed.emit()

        server.stateChanged.connect(on_state)
        if server.state is not None:
            on_state(server.state)
