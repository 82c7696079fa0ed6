"""``DeviceSession``: one device, the facade the app binds to.

It wires a :class:`LikesCubit` (the core's decisions) to a :class:`SyncClient`
(the wire) and a :class:`DeviceStore` (the disk):

* open: read the state file, restore values, revisions and unconfirmed intents
  at once (the window shows them before any network), then connect in the
  background;
* every snapshot (first connect, reconnect, gap resync) goes through
  ``server_push``, then intents that were never confirmed are sent again unless
  a newer server write superseded them;
* every state change is recorded in the store (coalesced, off the loop).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

from app.sync import DeviceContext, SyncCompletion
from syncserver.protocol import Push, Snapshot

from .backoff import Backoff
from .catalogue import CatalogueItem, load_catalogue
from .client import SyncClient
from .likes import Intent, LikesCubit, LikesState, item_id_of, like_key
from .status import ConnectionStatus
from .store import DeviceStore, StoredIntent

__all__ = ["DeviceSession"]

log = logging.getLogger(__name__)


class DeviceSession:
    """One device: its cubit, its link, its persisted state. Create with :meth:`open`."""

    def __init__(
        self, name: str, store: DeviceStore, client: SyncClient, cubit: LikesCubit
    ) -> None:
        self.name = name
        self.device_id = cubit.device.device_id
        self.cubit = cubit
        self.client = client
        self._store = store
        self._persisted = cubit.state
        self._unsubscribe_state = cubit.subscribe(self._persist)
        self._unsubscribe_seen = client.newest_seen.subscribe(store.put_newest_seen)
        self._closed = False

    @classmethod
    async def open(
        cls,
        name: str,
        server_urls: Sequence[str],
        *,
        data_dir: Path | None = None,
        catalogue: Sequence[CatalogueItem] | None = None,
        request_timeout: float = 10.0,
        backoff: Backoff | None = None,
        drop_push: Callable[[Push], bool] | None = None,
        heartbeat: float | None = 15.0,
    ) -> DeviceSession:
        """Restore device ``name`` from its state file and start connecting.

        ``backoff`` tunes the reconnect delays; ``drop_push`` may lose pushes on
        purpose (a flaky network, for demos and tests); ``heartbeat`` is how
        often an idle link checks it missed nothing (None: never).
        """
        items = tuple(catalogue) if catalogue is not None else load_catalogue()
        store, stored = await DeviceStore.open(data_dir, name)
        device_id = stored.device_id
        if device_id is None:
            device_id = secrets.randbits(62)
            store.put_device_id(device_id)
        liked: dict[str, bool] = {}
        revisions: dict[str, int] = {}
        for key, value in stored.values.items():
            item_id = item_id_of(key)
            if item_id is not None and isinstance(value, bool):
                liked[item_id] = value
                revisions[key] = stored.revisions.get(key, -1)
        intents = {
            item_id: Intent(intent.value, intent.local_revision, intent.base_revision)
            for key, intent in stored.intents.items()
            if (item_id := item_id_of(key)) is not None and isinstance(intent.value, bool)
        }
        session: DeviceSession | None = None

        def on_push(push: Push) -> None:
            if session is not None:
                session.cubit.apply_push(push)

        def on_snapshot(snapshot: Snapshot) -> None:
            if session is not None:
                session._on_snapshot(snapshot)

        client = SyncClient(
            server_urls,
            device_id,
            since=stored.newest_seen,
            on_push=on_push,
            on_snapshot=on_snapshot,
            request_timeout=request_timeout,
            backoff=backoff,
            drop_push=drop_push,
            heartbeat=heartbeat,
        )
        cubit = LikesCubit(
            items,
            client,
            device=DeviceContext(device_id),
            liked=liked,
            revisions=revisions,
            intents=intents,
        )
        session = cls(name, store, client, cubit)
        client.start()
        return session

    # -- what the app binds to ---------------------------------------------------------

    @property
    def status(self) -> ConnectionStatus:
        return self.client.status

    @property
    def state(self) -> LikesState:
        return self.cubit.state

    def toggle_like(self, item_id: str) -> SyncCompletion:
        """Flip an item's like (shown at once, synced in the background); awaiting
        the result is optional and raises the sync's error, if any."""
        return self.cubit.toggle_like(item_id)

    def subscribe_status(self, listener: Callable[[ConnectionStatus], None]) -> Callable[[], None]:
        """Call ``listener(status)`` on every connection change; returns an unsubscribe."""
        return self.client.subscribe_status(listener)

    async def close(self) -> None:
        """Disconnect and write everything to disk; unconfirmed intents are kept."""
        if self._closed:
            return
        self._closed = True
        # Stop recording first: closing the link fails requests in flight, and
        # that must not erase intents the next start has to send.
        self._unsubscribe_state()
        self._unsubscribe_seen()
        self.cubit.close()
        try:
            await self.client.close()
        finally:
            await self._store.close()

    async def flush(self) -> None:
        """Wait until the state shown so far is on disk."""
        await self._store.flush()

    # -- internals ---------------------------------------------------------------------

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self.cubit.apply_snapshot(snapshot)
        self.cubit.resume_intents()

    def _persist(self, state: LikesState) -> None:
        """Record what changed since the last state (values, revisions, intents)."""
        before = self._persisted
        self._persisted = state
        store = self._store
        if state.items is not before.items or state.revisions is not before.revisions:
            for old, new in zip(before.items, state.items, strict=True):
                key = like_key(new.id)
                revision = state.revisions.get(key, -1)
                if old.liked != new.liked or before.revisions.get(key, -1) != revision:
                    store.put_value(key, new.liked, revision)
        if state.intents is not before.intents:
            for item_id in before.intents.keys() | state.intents.keys():
                intent = state.intents.get(item_id)
                if intent != before.intents.get(item_id):
                    stored = (
                        None
                        if intent is None
                        else StoredIntent(intent.value, intent.local_revision, intent.base_revision)
                    )
                    store.put_intent(like_key(item_id), stored)
