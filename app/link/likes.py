"""The demo's domain cubit: items a device can like, synced through the core.

One key per item, ``like/<item id>``, on the wire and in the core alike.
``toggle_like`` goes through ``optimistic_sync_with_push``; pushes and catch-up
snapshots go through ``server_push``; a failed sync reloads the key from the
server (the reference's ``onFinish`` example), so the UI ends on the server's
truth. Per-key statuses are derived from the core's events (``keystatus.py``).
Events gather their changes in a draft that becomes one new state: at once for
a single event, at the end of a batch for a frame of pushes, so a frame costs
one state copy and one status per key it touched, however many pushes it holds.

A key's server revision has one owner, the core's :class:`DeviceContext`:
the state shows values, intents and statuses, and statuses read the revision
from the context when they are derived. A ``set`` the server answers with
``unavailable`` stays in flight and is sent again after a backoff delay; its
badge says so (``SyncPhase.UNAVAILABLE`` with the retry time).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.sync import (
    Cubit,
    DeviceContext,
    OptimisticApplied,
    PushApplied,
    PushMetadata,
    RequestSent,
    ResponseApplied,
    SyncCompletion,
    SyncEvent,
    SyncFailed,
    SyncFinished,
)
from syncserver.protocol import Ack, Push, Snapshot, Value

from .backoff import Backoff
from .catalogue import CatalogueItem
from .errors import (
    ClientClosedError,
    DisconnectedError,
    LinkError,
    NetworkError,
    ServerRefusedError,
    ServerUnavailableError,
)
from .keystatus import UNKNOWN_DEVICE, KeyStatus, SyncPhase, derive_status
from .store import Intent

__all__ = [
    "Intent",
    "Item",
    "KeyStatus",
    "LikesBackend",
    "LikesCubit",
    "LikesState",
    "SyncPhase",
    "item_id_of",
    "like_key",
]

log = logging.getLogger(__name__)

KEY_PREFIX = "like/"
_PREFIX_LENGTH = len(KEY_PREFIX)


def like_key(item_id: str) -> str:
    """The key of an item's like, on the wire and in the core."""
    return KEY_PREFIX + item_id


def item_id_of(key: str) -> str | None:
    """The item id of a like key, or None for any other key."""
    return key[_PREFIX_LENGTH:] if key.startswith(KEY_PREFIX) else None


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    title: str
    icon: str
    liked: bool = False


@dataclass(frozen=True, slots=True)
class LikesState:
    """Everything a device window shows.

    ``statuses`` and ``intents`` are keyed by item id. ``taps`` / ``requests``
    give the coalescing ratio.
    """

    items: tuple[Item, ...] = ()
    statuses: Mapping[str, KeyStatus] = field(default_factory=dict)
    taps: int = 0
    requests: int = 0
    intents: Mapping[str, Intent] = field(default_factory=dict)
    # Item id -> position in ``items``; items never move, so every state shares it.
    positions: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def evolve(self, **changes: Any) -> LikesState:
        """A copy with ``changes``: ``dataclasses.replace`` without its per-call
        introspection, which dominated applying a push on every device."""
        fields: dict[str, Any] = {
            "items": self.items,
            "statuses": self.statuses,
            "taps": self.taps,
            "requests": self.requests,
            "intents": self.intents,
            "positions": self.positions,
        }
        fields.update(changes)
        return LikesState(**fields)

    def item(self, item_id: str) -> Item:
        return self.items[self.positions[item_id]]

    def liked(self, item_id: str) -> bool:
        return self.item(item_id).liked

    def status(self, item_id: str) -> KeyStatus:
        return self.statuses.get(item_id, KeyStatus())

    def revision(self, item_id: str) -> int:
        """The item's server revision as its status shows it (0: never written or
        unknown); the device's context owns it (``LikesCubit.server_revision``)."""
        return self.status(item_id).server_revision

    def with_liked(self, item_id: str, liked: bool) -> LikesState:
        index = self.positions[item_id]
        if self.items[index].liked == liked:
            return self
        items = list(self.items)
        old = items[index]
        items[index] = Item(old.id, old.title, old.icon, liked)
        return self.evolve(items=tuple(items))

    def with_intent(self, item_id: str, intent: Intent | None) -> LikesState:
        if self.intents.get(item_id) == intent:
            return self
        intents = dict(self.intents)
        if intent is None:
            intents.pop(item_id, None)
        else:
            intents[item_id] = intent
        return self.evolve(intents=intents)


def initial_state(
    catalogue: Sequence[CatalogueItem],
    *,
    liked: Mapping[str, bool] | None = None,
    intents: Mapping[str, Intent] | None = None,
) -> LikesState:
    """A state for ``catalogue``, seeded with persisted values (unknown ids are dropped);
    statuses are derived by the cubit."""
    liked = liked or {}
    known = {c.id for c in catalogue}
    intents = {k: v for k, v in (intents or {}).items() if k in known}
    items = tuple(
        Item(
            c.id,
            c.title,
            c.icon,
            bool(intents[c.id].value) if c.id in intents else bool(liked.get(c.id, False)),
        )
        for c in catalogue
    )
    positions = {item.id: index for index, item in enumerate(items)}
    return LikesState(items=items, intents=intents, positions=positions)


class LikesBackend(Protocol):
    """What the cubit needs from the link (``SyncClient`` provides it)."""

    async def set(self, key: str, value: Any, local_revision: int) -> Ack: ...

    async def get(self, key: str) -> Value: ...


@dataclass(slots=True)
class _Track:
    """What the events told us about one key, beyond what the state holds."""

    sent_value: bool | None = None
    failed: bool = False
    writer: int | None = None
    last_choice: bool | None = None
    retry_at: float | None = None


@dataclass(slots=True)
class _Draft:
    """State changes gathered since the last emit: one event's, or a whole batch's
    (a frame of pushes), turned into one new state by ``LikesCubit._commit``."""

    liked: dict[str, bool] = field(default_factory=dict)
    intents: dict[str, Intent | None] = field(default_factory=dict)
    """Item id -> its intent from now on (None: cleared)."""
    requests: int = 0
    stale: dict[str, None] = field(default_factory=dict)
    """Item ids whose status is derived again at the commit (a dict keeps their order)."""


def _unknown_revision(_state: object) -> int:
    """What the state knows of a server revision: nothing (the device context owns it)."""
    return -1


def _constant(value: bool) -> Callable[[], bool]:
    return lambda: value


def _as_like(value: object) -> bool | None:
    """A wire value as a like: null means never written (not liked)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    return None


class LikesCubit(Cubit[LikesState]):
    """Likes of one device: optimistic toggles, pushes, reloads and honest statuses.

    ``revisions`` (like key -> server revision) seeds the device's context;
    ``retry_backoff``, ``rng`` and ``clock`` pace resends after ``unavailable``.
    """

    def __init__(
        self,
        catalogue: Sequence[CatalogueItem],
        backend: LikesBackend,
        *,
        device: DeviceContext | None = None,
        liked: Mapping[str, bool] | None = None,
        revisions: Mapping[str, int] | None = None,
        intents: Mapping[str, Intent] | None = None,
        retry_backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        state = initial_state(catalogue, liked=liked, intents=intents)
        super().__init__(state, device=device)
        self._backend = backend
        self._retry_backoff = retry_backoff if retry_backoff is not None else Backoff()
        self._rng = rng or random.Random()
        self._clock = clock
        self._tracks: dict[str, _Track] = {}
        self._new_history = False
        self._positions = state.positions  # items never move: every state shares it
        self._draft: _Draft | None = None
        for key, revision in (revisions or {}).items():
            if item_id_of(key) in state.positions:
                self.device.restore(key, server_revision=revision)
        for item_id, intent in state.intents.items():
            # Restored intents: keep local revisions rising across restarts.
            self.device.restore(like_key(item_id), local_revision=intent.local_revision)
            self._track(item_id).last_choice = bool(intent.value)
        with self.batch():
            for item_id in state.positions:
                self._touch(item_id)
        self._unsubscribe = self.device.subscribe(self._on_event)

    @property
    def state(self) -> LikesState:
        """The state now, with whatever a batch has changed so far."""
        if self._draft is not None:
            self._commit()  # held back for the batch's end; someone reads it now
        return self._state

    def _batch_ending(self) -> None:
        # The outermost batch ends: its gathered changes become one state, each
        # key's status derived once however many events touched it.
        self._commit()

    # -- user actions ------------------------------------------------------------

    def toggle_like(self, item_id: str) -> SyncCompletion:
        """Flip the item's like now and sync it; coalesces with a request in flight."""
        return self._sync(item_id, lambda: not self.state.liked(item_id), tap=True)

    def resume_intents(self) -> list[SyncCompletion]:
        """After a (re)connect's snapshot: send every unconfirmed intent again,
        unless a newer server write superseded it (that write stays shown)."""
        completions = []
        for item_id, intent in tuple(self.state.intents.items()):
            key = like_key(item_id)
            if self.device.in_flight(key):
                continue  # its own loop is still at work
            # A newer server write would have cleared the intent (see _on_event); what
            # is left is the user's latest choice, unconfirmed.
            completions.append(self._sync(item_id, _constant(bool(intent.value)), tap=False))
        return completions

    def server_revision(self, item_id: str) -> int:
        """The newest server revision the device knows for the item (-1: unknown)."""
        return self.device.server_revision(like_key(item_id))

    # -- from the server ---------------------------------------------------------

    def apply_push(self, push: Push) -> None:
        """Feed one server push through the core's revision rules."""
        self.apply_pushes((push,))

    def apply_pushes(self, pushes: Iterable[Push]) -> None:
        """Feed a frame's pushes through the revision rules: one state change, one emit."""
        with self.batch():
            for push in pushes:
                self._apply_write(
                    push.key, push.value, push.server_revision, push.local_revision, push.device_id
                )

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Feed a catch-up snapshot (or one page of it) through the same rules as pushes.

        Entries name their writer, so the echo of this device's own older write
        does not cancel a newer intent of its user. While a new history's
        snapshot arrives (:meth:`forget_history`), an entry for a key with an
        unconfirmed intent only records its revision: the intent is sent again."""
        with self.batch():
            for entry in snapshot.values:
                writer = entry.device_id or UNKNOWN_DEVICE  # 0: written by an older server
                item_id = item_id_of(entry.key)
                if (
                    self._new_history
                    and item_id is not None
                    and item_id in self._positions
                    and self._intent_pending(item_id)
                ):
                    self.device.learn_server_revision(entry.key, entry.server_revision)
                    self._refresh(item_id)
                    continue
                self._apply_write(
                    entry.key, entry.value, entry.server_revision, entry.local_revision, writer
                )

    def forget_history(self) -> None:
        """The server's history was replaced (a new epoch): forget every server
        revision and who wrote what; the new snapshot follows, then :meth:`caught_up`."""
        self.device.forget_server_revisions()
        self._new_history = True
        for track in self._tracks.values():
            track.writer = None
            track.failed = False
            track.last_choice = None
        with self.batch():
            for item_id in self._positions:
                self._touch(item_id)

    def caught_up(self, keys_written: Collection[str] | None = None) -> list[SyncCompletion]:
        """The snapshot is complete. After a new history's snapshot, ``keys_written``
        lists every key it holds: any other is never written there (not liked,
        revision 0). Then every unconfirmed intent is sent again."""
        if keys_written is not None:
            with self.batch():
                for item_id in self._positions:
                    draft = self._touch(item_id)
                    key = like_key(item_id)
                    if key in keys_written or self._intent_pending(item_id):
                        continue
                    if self.device.in_flight(key):
                        continue
                    self.device.learn_server_revision(key, 0)
                    draft.liked[item_id] = False
        self._new_history = False
        return self.resume_intents()

    def close(self) -> None:
        """Stop deriving statuses (sync loops still running keep their own course)."""
        self._unsubscribe()

    # -- internals ---------------------------------------------------------------

    def _sync(self, item_id: str, choose: Callable[[], bool], *, tap: bool) -> SyncCompletion:
        key = like_key(item_id)
        # Reading ``state`` first also settles a batch's pending changes, so the
        # core's optimistic apply starts from the state as it is now.
        if item_id not in self.state.positions:
            raise KeyError(f"no item {item_id!r} in this device's catalogue")
        device = self.device

        def apply_optimistic(state: LikesState, liked: bool) -> LikesState:
            # The core has already given this change its local revision.
            intent = Intent(liked, device.local_revision(key), device.server_revision(key))
            state = state.with_liked(item_id, liked).with_intent(item_id, intent)
            track = self._track(item_id)
            track.failed = False
            track.last_choice = liked
            if tap:
                state = state.evolve(taps=state.taps + 1)
            # The status changes in the same emit as the value: never "synced" with an intent.
            return self._with_status(state, item_id)

        async def send(liked: bool, local_revision: int, _device_id: int, inform: Any) -> Ack:
            ack = await self._set_retrying(item_id, liked, local_revision)
            inform(ack.server_revision)
            return ack

        def apply_response(state: LikesState, ack: Ack) -> LikesState | None:
            liked = _as_like(ack.value)
            if liked is None:
                return None
            return state.with_liked(item_id, liked)

        async def on_finish(error: BaseException | None) -> LikesState | None:
            if error is None:
                return None
            return await self._reload(item_id, error)

        return self.optimistic_sync_with_push(
            key=key,
            value_to_apply=choose,
            apply_optimistic_value_to_state=apply_optimistic,
            get_value_from_state=lambda state: state.liked(item_id),
            get_server_revision_from_state=lambda _state: device.server_revision(key),
            send_value_to_server=send,
            apply_server_response_to_state=apply_response,
            on_finish=on_finish,
        )

    async def _set_retrying(self, item_id: str, liked: bool, local_revision: int) -> Ack:
        """``set``, sent again with backoff while the server says ``unavailable``."""
        track = self._track(item_id)
        attempt = 0
        try:
            while True:
                try:
                    return await self._backend.set(like_key(item_id), liked, local_revision)
                except ServerUnavailableError as exc:
                    attempt += 1
                    delay = self._retry_backoff.delay(attempt, self._rng)
                    log.info("%s: server unavailable (%s), retrying in %.2f s", item_id, exc, delay)
                    track.retry_at = self._clock() + delay
                    self._refresh(item_id)
                    await asyncio.sleep(delay)
        finally:
            if track.retry_at is not None:
                track.retry_at = None
                self._refresh(item_id)

    async def _reload(self, item_id: str, error: BaseException) -> LikesState | None:
        """After a failed sync: show the server's value (reference ``onFinish``)."""
        if isinstance(error, DisconnectedError | ClientClosedError):
            return None  # never answered: the intent waits for the reconnect (or restart)
        key = like_key(item_id)
        attempt = 0
        while True:
            try:
                reply = await self._backend.get(key)
                break
            except (NetworkError, ClientClosedError) as exc:
                log.warning("could not reload %s after %s: %s", item_id, error, exc)
                return None  # the intent stays and is sent again on reconnect
            except ServerRefusedError as exc:
                # Refused now (injected failure, rate limit, unavailable): the shown
                # value is not the server's, so ask again until it answers.
                attempt += 1
                delay = self._retry_backoff.delay(attempt, self._rng)
                log.warning(
                    "server refused reloading %s (%s); again in %.2f s", item_id, exc, delay
                )
                await asyncio.sleep(delay)
            except LinkError as exc:
                log.warning("reloading %s after %s failed: %s", item_id, error, exc)
                return self.state.with_intent(item_id, None)
        state = self.state.with_intent(item_id, None)
        liked = _as_like(reply.value)
        if liked is not None and reply.server_revision >= self.device.server_revision(key):
            self.device.learn_server_revision(key, reply.server_revision)
            state = state.with_liked(item_id, liked)
        self._track(item_id).writer = UNKNOWN_DEVICE
        return self._with_status(state, item_id)

    def _apply_write(
        self, key: str, value: object, server_revision: int, local_revision: int, device_id: int
    ) -> None:
        # Once per push on every device: the helpers are inlined (item_id_of, _as_like).
        if not key.startswith(KEY_PREFIX):
            return
        item_id = key[_PREFIX_LENGTH:]
        if item_id not in self._positions:
            return  # not one of this catalogue's likes
        if value is not None and value is not True and value is not False:
            log.warning("ignoring non-boolean value %r for %s", value, key)
            return
        liked = value is True  # null means never written: not liked

        def apply(_state: LikesState, _revision: int) -> None:
            # Gathered into the batch's draft: the state is copied once per frame.
            self._touch(item_id).liked[item_id] = liked

        self.server_push(
            key=key,
            push_metadata=PushMetadata(server_revision, local_revision, device_id),
            # The device's context owns the revision: the state adds nothing to it.
            get_server_revision_from_state=_unknown_revision,
            apply_server_push_to_state=apply,
        )

    def _track(self, item_id: str) -> _Track:
        track = self._tracks.get(item_id)
        if track is None:
            track = self._tracks[item_id] = _Track()
        return track

    def _on_event(self, event: SyncEvent) -> None:
        key = event.key
        if not isinstance(key, str) or not key.startswith(KEY_PREFIX):
            return
        item_id = key[_PREFIX_LENGTH:]
        if item_id not in self._positions:
            return
        track = self._tracks.get(item_id) or self._track(item_id)
        draft = self._draft
        if draft is None:
            draft = self._draft = _Draft()
        draft.stale[item_id] = None
        # Pushes first: a frame of them is the hot path.
        if isinstance(event, PushApplied):
            # A newer server write supersedes any intent not yet confirmed (last
            # write wins); our own echo at the newest local revision confirms it.
            track.writer = event.from_device_id
            track.failed = False
            if self._intent_pending(item_id):
                # The echo of this device's own write confirms its intent; only
                # another device's write supersedes it.
                if event.from_device_id == self.device.device_id:
                    log.info(
                        "intent for %s confirmed at server revision %d",
                        key,
                        event.server_revision,
                    )
                else:
                    log.info(
                        "intent for %s superseded by server revision %d from device %s",
                        key,
                        event.server_revision,
                        event.from_device_id,
                    )
                draft.intents[item_id] = None
        elif isinstance(event, OptimisticApplied):
            track.failed = False
            track.last_choice = bool(event.value)
        elif isinstance(event, RequestSent):
            track.sent_value = bool(event.value)
            draft.requests += 1
        elif isinstance(event, ResponseApplied):
            track.writer = self.device.device_id
        elif isinstance(event, SyncFinished):
            draft.intents[item_id] = None
        elif isinstance(event, SyncFailed):
            # Only a sync that reached the server and failed is shown as failed;
            # an intent that never left waits for the reconnect as "saving".
            track.failed = not isinstance(event.error, DisconnectedError | ClientClosedError)
        if not self._holding:  # outside a batch: settle now
            self._commit()

    def _touch(self, item_id: str) -> _Draft:
        """The pending changes, with ``item_id``'s status to be derived again."""
        draft = self._draft
        if draft is None:
            draft = self._draft = _Draft()
        draft.stale[item_id] = None
        return draft

    def _intent_pending(self, item_id: str) -> bool:
        """Whether an intent waits for ``item_id``, pending changes included."""
        draft = self._draft
        if draft is not None and item_id in draft.intents:
            return draft.intents[item_id] is not None
        return item_id in self._state.intents

    def _refresh(self, item_id: str) -> None:
        self._touch(item_id)
        if not self._holding:  # outside a batch: settle now
            self._commit()

    def _commit(self) -> None:
        """Turn the pending changes into one new state; emit it if anything changed.

        Each touched key's status is derived from the final values: events only
        touch their own key, so that is the status its last event would derive."""
        draft = self._draft
        if draft is None:
            return
        self._draft = None
        state = self._state
        positions = self._positions
        items = state.items
        if draft.liked:
            changed: list[Item] | None = None
            for item_id, liked in draft.liked.items():
                index = positions[item_id]
                old = items[index]
                if old.liked != liked:
                    if changed is None:
                        changed = list(items)
                    changed[index] = Item(old.id, old.title, old.icon, liked)
            if changed is not None:
                items = tuple(changed)
        intents = state.intents
        if draft.intents:
            new_intents: dict[str, Intent] | None = None
            for item_id, intent in draft.intents.items():
                if intents.get(item_id) == intent:
                    continue
                if new_intents is None:
                    new_intents = dict(intents)
                if intent is None:
                    del new_intents[item_id]
                else:
                    new_intents[item_id] = intent
            if new_intents is not None:
                intents = new_intents
        statuses = state.statuses
        new_statuses: dict[str, KeyStatus] | None = None
        for item_id in draft.stale:
            status = self._derive(item_id, items[positions[item_id]].liked, item_id in intents)
            if statuses.get(item_id) != status:
                if new_statuses is None:
                    new_statuses = dict(statuses)
                new_statuses[item_id] = status
        if new_statuses is not None:
            statuses = new_statuses
        if (
            items is state.items
            and intents is state.intents
            and statuses is state.statuses
            and not draft.requests
        ):
            return  # nothing changed: no emit
        self.emit(
            LikesState(
                items, statuses, state.taps, state.requests + draft.requests, intents, positions
            )
        )

    def _with_status(self, state: LikesState, item_id: str) -> LikesState:
        status = self._derive(item_id, state.liked(item_id), item_id in state.intents)
        if state.statuses.get(item_id) == status:
            return state
        return state.evolve(statuses={**state.statuses, item_id: status})

    def _derive(self, item_id: str, liked: bool, intent_pending: bool) -> KeyStatus:
        """The item's status, given the value shown and whether an intent waits."""
        key = KEY_PREFIX + item_id
        track = self._tracks.get(item_id) or self._track(item_id)
        device = self._device
        return derive_status(
            server_revision=device.server_revision(key),
            in_flight=device.in_flight(key),
            value_moved_since_send=(
                track.sent_value is not None
                and liked != track.sent_value
                and not device.latest_change_from_push(key)
            ),
            intent_pending=intent_pending,
            failed=track.failed,
            writer=track.writer,
            device_id=device.device_id,
            lost_choice=track.last_choice is not None and liked != track.last_choice,
            retry_at=track.retry_at,
        )

    def refresh_all(self, item_ids: Iterable[str] | None = None) -> None:
        """Recompute statuses (e.g. after restoring state)."""
        with self.batch():
            for item_id in item_ids if item_ids is not None else self._positions:
                self._refresh(item_id)
