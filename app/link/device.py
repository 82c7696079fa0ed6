"""``DeviceSession``: one device in one space, the facade the app binds to.

It wires a :class:`LikesCubit` (the core's decisions) to a :class:`SyncClient`
(the wire) and a :class:`StateStore` (the disk; the SQLite :class:`DeviceStore`
unless another is given):

* open: claim the device (one session per identity: :class:`DeviceInUseError`
  otherwise), read its state, restore values, revisions and unconfirmed
  intents at once (the window shows them before any network), make sure a new
  device's id is on disk, then connect in the background;
* every snapshot (first connect, reconnect, gap resync) goes through
  ``server_push``; a snapshot of a new server history (epoch) first makes the
  device forget the old one; once caught up, intents that were never confirmed
  are sent again unless a newer server write superseded them;
* a server whose database has this device's id bound to another secret
  (closed 1008 "this device id has another secret") makes the device take a
  new id and secret, on disk before it reconnects;
* every state change is recorded in the store (coalesced, off the loop).

A session follows one space (an account, a document, a room): its state
lives in the store of (device name, space) and its link joins that space
only. A device in two spaces opens two sessions.
"""

from __future__ import annotations

import base64
import logging
import random
import secrets
import ssl as ssl_module
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from app.sync import DeviceContext, SyncCompletion
from app.sync.device import new_device_id
from syncserver.protocol import DEFAULT_SPACE, Push, Snapshot

from .backoff import Backoff
from .catalogue import CatalogueItem, load_catalogue
from .client import Connect, SyncClient
from .engine import CaughtUp, check_space_name
from .likes import LikesCubit, LikesState, item_id_of, like_key
from .status import ConnectionStatus
from .store import DeviceStore, Intent, StateStore
from .urls import check_server_url

__all__ = ["DeviceSession"]

log = logging.getLogger(__name__)


class DeviceSession:
    """One device in one space: its cubit, its link, its persisted state. Create
    with :meth:`open`."""

    def __init__(self, name: str, store: StateStore, client: SyncClient, cubit: LikesCubit) -> None:
        self.name = name
        self.cubit = cubit
        self.client = client
        self._store = store
        self._persisted = cubit.state
        self._unsubscribe_state = cubit.subscribe(self._persist)
        self._unsubscribe_seen = client.newest_seen.subscribe(store.put_newest_seen)
        self._closed = False

    @property
    def space(self) -> str:
        """The space this session follows."""
        return self.client.space

    @property
    def device_id(self) -> int:
        """This device's id (a new one if the server had its old id bound to another secret)."""
        return self.cubit.device.device_id

    @classmethod
    async def open(
        cls,
        name: str,
        server_urls: Sequence[str],
        *,
        data_dir: Path | str | None = None,
        catalogue: Sequence[CatalogueItem] | None = None,
        request_timeout: float = 10.0,
        backoff: Backoff | None = None,
        drop_push: Callable[[Push], bool] | None = None,
        heartbeat: float | None = 15.0,
        store: StateStore | None = None,
        connect: Connect | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        token: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        cafile: str | Path | None = None,
        space: str = DEFAULT_SPACE,
    ) -> DeviceSession:
        """Restore device ``name`` in ``space`` from its state and start connecting.

        ``backoff`` tunes the reconnect delays (and resends after
        ``unavailable``); ``drop_push`` may lose pushes on purpose (a flaky
        network, for demos and tests); ``heartbeat`` is how often an idle link
        checks it missed nothing (None: never). ``store`` replaces the state
        file under ``data_dir``; ``connect``, ``rng`` and ``clock`` replace the
        transport, the randomness (device id, backoff jitter) and the status clock.
        ``token`` is the server's shared token; ``ssl`` or ``cafile`` set up TLS
        for ``wss://`` URLs. The device's secret (made with its id, kept in its
        state) goes in every hello; if the server has the id bound to another
        secret, the device takes a new id and secret (see :attr:`device_id`).
        ``space`` is the space to follow (the protocol's ``"default"`` unless given):
        the device's state in it is kept apart from its state in any other space,
        and the default space's state file is the one devices had before spaces.
        Raises :class:`DeviceInUseError` if the device is open elsewhere (in this
        space), and ValueError for a URL websockets cannot dial, a bad space name
        or a ``store`` of another space (before the state file is touched).
        """
        if connect is None:
            server_urls = [check_server_url(url) for url in server_urls]
        check_space_name(space)
        store_space = getattr(store, "space", space)
        if store_space != space:
            raise ValueError(f"the store given keeps space {store_space!r}, not {space!r}")
        items = tuple(catalogue) if catalogue is not None else load_catalogue()
        if store is None:
            store = DeviceStore.for_device(data_dir, name, space)
        stored = await store.load()
        try:
            device_id = stored.device_id
            device_secret = stored.device_secret
            if device_id is None or device_secret is None:
                if device_id is None:
                    # 53 bits: exact as a JSON number in every client language.
                    device_id = (
                        new_device_id(rng.getrandbits) if rng is not None else new_device_id()
                    )
                    store.put_device_id(device_id)
                # A device from before secrets gets one now; its first hello records it.
                device_secret = _new_secret(rng)
                store.put_device_secret(device_secret)
                # On disk before the first connection: a process killed right after
                # its first taps must come back as the same device, with the same secret.
                await store.flush()
        except BaseException:
            await store.close()
            raise
        liked: dict[str, bool] = {}
        revisions: dict[str, int] = {}
        for key, value in stored.values.items():
            item_id = item_id_of(key)
            if item_id is not None and isinstance(value, bool | None):
                liked[item_id] = bool(value)
                revisions[key] = stored.revisions.get(key, -1)
        intents = {
            item_id: intent
            for key, intent in stored.intents.items()
            if (item_id := item_id_of(key)) is not None and isinstance(intent.value, bool)
        }
        session: DeviceSession | None = None

        def on_pushes(pushes: Sequence[Push]) -> None:
            if session is not None:
                session.cubit.apply_pushes(pushes)

        def on_new_epoch(epoch: str) -> None:
            if session is not None:
                log.info("device %r: the server's history is new (epoch %s)", name, epoch)
                session.cubit.forget_history()

        def on_snapshot(snapshot: Snapshot) -> None:
            if session is not None:
                session.cubit.apply_snapshot(snapshot)

        def on_caught_up(caught_up: CaughtUp) -> None:
            if session is not None:
                session._on_caught_up(caught_up)

        async def renew_identity() -> tuple[int, str]:
            # The server's database is new and another connection claimed our id
            # first: go on under a fresh identity, on disk before the next hello.
            assert store is not None
            new_id = new_device_id(rng.getrandbits) if rng is not None else new_device_id()
            new_secret = _new_secret(rng)
            store.put_device_id(new_id)
            store.put_device_secret(new_secret)
            await store.flush()
            if session is not None:
                session.cubit.device.change_device_id(new_id)
            return new_id, new_secret

        backoff = backoff if backoff is not None else Backoff()
        client = SyncClient(
            server_urls,
            device_id,
            since=stored.newest_seen,
            epoch=stored.epoch,
            on_pushes=on_pushes,
            on_snapshot=on_snapshot,
            on_new_epoch=on_new_epoch,
            on_caught_up=on_caught_up,
            request_timeout=request_timeout,
            backoff=backoff,
            drop_push=drop_push,
            heartbeat=heartbeat,
            connect=connect,
            rng=rng,
            clock=clock,
            token=token,
            device_secret=device_secret,
            ssl=ssl,
            cafile=cafile,
            renew_identity=renew_identity,
            space=space,
        )
        cubit = LikesCubit(
            items,
            client,
            device=DeviceContext(device_id),
            liked=liked,
            revisions=revisions,
            intents=intents,
            retry_backoff=backoff,
            rng=rng,
            clock=clock,
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
        """Disconnect and write everything to disk; unconfirmed intents are kept.
        The device can then be opened again (here or in another process)."""
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

    def _on_caught_up(self, caught_up: CaughtUp) -> None:
        self.cubit.caught_up(caught_up.keys_written)
        # Recorded before newest_seen moves (the client publishes it after this).
        self._store.put_epoch(caught_up.epoch)

    def _persist(self, state: LikesState) -> None:
        """Record what changed since the last state: values with the revision the
        device's context holds for them, and intents."""
        before = self._persisted
        self._persisted = state
        store = self._store
        device = self.cubit.device
        if state.items is not before.items or state.statuses is not before.statuses:
            for old, new in zip(before.items, state.items, strict=True):
                if old.liked != new.liked or before.statuses.get(new.id) != state.statuses.get(
                    new.id
                ):
                    key = like_key(new.id)
                    store.put_value(key, new.liked, device.server_revision(key))
        if state.intents is not before.intents:
            for item_id in before.intents.keys() | state.intents.keys():
                intent: Intent | None = state.intents.get(item_id)
                if intent != before.intents.get(item_id):
                    store.put_intent(like_key(item_id), intent)


def _new_secret(rng: random.Random | None) -> str:
    """A fresh device secret (from ``rng`` when given, for reproducible runs)."""
    if rng is None:
        return secrets.token_urlsafe(32)
    return base64.urlsafe_b64encode(rng.randbytes(32)).decode().rstrip("=")
