"""The cubit: immutable state plus the optimistic sync operations.

``optimistic_sync_with_push`` shows a change at once, then runs at most one sync
loop per (device, key): one request in flight, and at most one follow-up
carrying the newest local value when the response comes back. ``server_push``
feeds the server's pushes through the revision rules of :mod:`app.sync.rules`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .completion import SyncCompletion
from .device import DeviceContext, HeldPush, KeyBook
from .errors import MissingServerRevisionError, TooManyFollowUpsError
from .events import (
    FollowUpScheduled,
    OptimisticApplied,
    PushApplied,
    PushHeld,
    PushIgnoredStale,
    RequestSent,
    ResponseApplied,
    SelfEchoAcknowledged,
    StaleResponseIgnored,
    SyncFailed,
    SyncFinished,
)
from .rules import PushMetadata, PushVerdict, ResponseVerdict, judge_push, judge_response

__all__ = ["Cubit", "SyncCompletion"]

S = TypeVar("S")
T = TypeVar("T")

InformServerRevision = Callable[[int], None]
SendWithPush = Callable[[T, int, int, InformServerRevision], Awaitable[Any]]
OnFinish = (
    Callable[[Any, BaseException | None], "S | Awaitable[S | None] | None"]
    | Callable[[BaseException | None], "S | Awaitable[S | None] | None"]
)
"""``on_finish(optimistic_value, error)`` as the reference calls it, or ``on_finish(error)``."""
ShouldSendAnother = Callable[..., bool]
"""``if_should_send_another_request(*, state_value, sent_value, request_count) -> bool``."""
StateListener = Callable[[S], None]

_APPLY = PushVerdict.APPLY
_SELF_ECHO = PushVerdict.SELF_ECHO
_HOLD = PushVerdict.HOLD
_STALE = PushVerdict.STALE


def _check_revision(revision: object) -> int:
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise TypeError(f"a server revision must be an int, not {type(revision).__name__}")
    return revision


def _no_server_revision(_state: object) -> int:
    return -1


def _check_limit(max_follow_up_requests: int) -> None:
    if isinstance(max_follow_up_requests, bool) or not isinstance(max_follow_up_requests, int):
        raise TypeError("max_follow_up_requests must be an int")
    if max_follow_up_requests < 1 and max_follow_up_requests != -1:
        raise ValueError(
            f"max_follow_up_requests must be at least 1 (or -1 for no limit), "
            f"not {max_follow_up_requests}"
        )


def _takes_optimistic_value(on_finish: Callable[..., object]) -> bool:
    """Whether ``on_finish`` has the reference's ``(optimistic_value, error)`` shape;
    a one-argument ``on_finish(error)`` keeps working."""
    try:
        inspect.signature(on_finish).bind(None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins): the older, simpler form
        return False
    return True


def _differs(*, state_value: object, sent_value: object, request_count: int) -> bool:
    """The default follow-up test of ``optimistic_sync``: the value moved on."""
    return state_value != sent_value


@dataclass(frozen=True, slots=True)
class _LoopSpec(Generic[S]):
    """How one sync loop talks to the server and reads and writes the state."""

    send: Callable[[Any, int, InformServerRevision], Awaitable[Any]]
    get_value_from_state: Callable[[S], Any]
    get_server_revision_from_state: Callable[[S], int]
    apply_server_response_to_state: Callable[[S, Any], S | None] | None
    on_finish: OnFinish[S] | None
    max_follow_up_requests: int
    with_revisions: bool
    if_should_send_another_request: ShouldSendAnother = _differs


class _Receipt:
    """The ``inform_server_revision`` callback handed to one request."""

    __slots__ = ("_book", "revision")

    def __init__(self, book: KeyBook) -> None:
        self._book = book
        self.revision: int | None = None

    def __call__(self, revision: int) -> None:
        revision = _check_revision(revision)
        self.revision = revision
        self._book.server_revision = max(self._book.server_revision, revision)


class _Batch:
    """What :meth:`Cubit.batch` returns. A plain context manager: every device
    opens one per pushes frame, and a generator-based one costs several times more."""

    __slots__ = ("_before", "_cubit")

    def __init__(self, cubit: Cubit[Any]) -> None:
        self._cubit = cubit
        self._before: Any = None

    def __enter__(self) -> None:
        cubit = self._cubit
        self._before = cubit._state
        cubit._holding += 1

    def __exit__(self, *exc_info: object) -> None:
        cubit = self._cubit
        try:
            if cubit._holding == 1:
                cubit._batch_ending()
        finally:
            cubit._holding -= 1
            if not cubit._holding and cubit._state is not self._before:
                cubit.emit(cubit._state)


class Cubit(Generic[S]):
    """Holds immutable state, tells subscribers of every change, and syncs it."""

    def __init__(self, initial_state: S, *, device: DeviceContext | None = None) -> None:
        self._state = initial_state
        self._device = device if device is not None else DeviceContext()
        self._listeners: list[StateListener[S]] = []
        self._holding = 0

    @property
    def state(self) -> S:
        return self._state

    @property
    def device(self) -> DeviceContext:
        return self._device

    def emit(self, state: S) -> None:
        """Replace the state and tell every subscriber (once, at the end of a batch)."""
        self._state = state
        if self._holding:
            return
        for listener in tuple(self._listeners):
            listener(state)

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Hold emits: the state changes at once, subscribers hear of it once when
        the outermost batch ends (applying a frame of many pushes, say)."""
        return _Batch(self)

    def _batch_ending(self) -> None:
        """Called as the outermost batch ends, before subscribers hear of it: a
        subclass that gathers changes during a batch turns them into state here."""

    def subscribe(self, listener: StateListener[S]) -> Callable[[], None]:
        """Call ``listener(state)`` on every emit; returns an unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    # -- optimistic sync with push -----------------------------------------------

    def optimistic_sync_with_push(
        self,
        *,
        key: Hashable,
        value_to_apply: Callable[[], T],
        apply_optimistic_value_to_state: Callable[[S, T], S],
        get_value_from_state: Callable[[S], T],
        get_server_revision_from_state: Callable[[S], int],
        send_value_to_server: SendWithPush[T],
        apply_server_response_to_state: Callable[[S, Any], S | None] | None = None,
        on_finish: OnFinish[S] | None = None,
        max_follow_up_requests: int = 10000,
    ) -> SyncCompletion:
        """Show ``value_to_apply()`` now and sync it; see the module docstring.

        At most ``max_follow_up_requests`` requests are sent in all (-1: no limit);
        a loop that would need one more fails with :class:`TooManyFollowUpsError`.
        ``on_finish`` is called as ``on_finish(optimistic_value, error)`` (the
        reference's form) or, if it takes one argument, ``on_finish(error)``.
        """
        _check_limit(max_follow_up_requests)
        value, running = self._apply_locally(
            key, value_to_apply, apply_optimistic_value_to_state, get_server_revision_from_state
        )
        if running is not None:
            return running
        device = self._device

        async def send(value: T, local_revision: int, inform: InformServerRevision) -> Any:
            return await send_value_to_server(value, local_revision, device.device_id, inform)

        return self._launch(
            key,
            value,
            _LoopSpec(
                send,
                get_value_from_state,
                get_server_revision_from_state,
                apply_server_response_to_state,
                on_finish,
                max_follow_up_requests,
                with_revisions=True,
            ),
        )

    # -- optimistic sync without push --------------------------------------------

    def optimistic_sync(
        self,
        *,
        key: Hashable,
        value_to_apply: Callable[[], T],
        apply_optimistic_value_to_state: Callable[[S, T], S],
        get_value_from_state: Callable[[S], T],
        send_value_to_server: Callable[[T], Awaitable[Any]],
        apply_server_response_to_state: Callable[[S, Any], S | None] | None = None,
        on_finish: OnFinish[S] | None = None,
        if_should_send_another_request: ShouldSendAnother | None = None,
        max_follow_up_requests: int = 10000,
    ) -> SyncCompletion:
        """The variant for servers without push: a changed value decides the follow-up.

        ``if_should_send_another_request(state_value=, sent_value=,
        request_count=)`` replaces that test (``request_count``: requests sent so
        far, the one just answered included); the follow-up carries the state's
        value. ``on_finish`` and ``max_follow_up_requests`` work as in
        :meth:`optimistic_sync_with_push`.
        """
        _check_limit(max_follow_up_requests)
        value, running = self._apply_locally(
            key, value_to_apply, apply_optimistic_value_to_state, None
        )
        if running is not None:
            return running

        async def send(value: T, local_revision: int, inform: InformServerRevision) -> Any:
            return await send_value_to_server(value)

        return self._launch(
            key,
            value,
            _LoopSpec(
                send,
                get_value_from_state,
                _no_server_revision,
                apply_server_response_to_state,
                on_finish,
                max_follow_up_requests,
                with_revisions=False,
                if_should_send_another_request=if_should_send_another_request or _differs,
            ),
        )

    def _apply_locally(
        self,
        key: Hashable,
        value_to_apply: Callable[[], T],
        apply_optimistic_value_to_state: Callable[[S, T], S],
        get_server_revision_from_state: Callable[[S], int] | None,
    ) -> tuple[T, SyncCompletion | None]:
        """Show the change now; return the value and the key's running loop, if any."""
        asyncio.get_running_loop()  # fail before changing anything when called off-loop
        device = self._device
        value = value_to_apply()
        book = device.book(key)
        # The change's local revision is taken first, so apply_optimistic_value_to_state
        # can read it from device.local_revision(key) instead of guessing it.
        book.local_revision += 1
        try:
            optimistic = apply_optimistic_value_to_state(self._state, value)
        except BaseException:
            book.local_revision -= 1
            raise
        running = book.loop
        if running is None and get_server_revision_from_state is not None:
            # Seed before the first request; a running loop re-reads it on response.
            device.known_server_revision(key, get_server_revision_from_state(self._state))
        book.local_value = value
        book.latest_change_from_push = False
        # The user's newer change is what a follow-up will carry: a push held
        # back before it no longer decides anything (its revision stays known).
        book.held_push = None
        self.emit(optimistic)
        if device.observed:
            device.publish(
                OptimisticApplied(
                    key=key,
                    device_id=device.device_id,
                    local_revision=book.local_revision,
                    server_revision=book.server_revision,
                    value=value,
                    coalesced=running is not None,
                )
            )
        return value, running

    def _launch(self, key: Hashable, value: Any, spec: _LoopSpec[S]) -> SyncCompletion:
        # The local revision is taken at the click: later taps may precede the task's start.
        loop_body = self._sync_loop(key, value, self._device.book(key).local_revision, spec)
        task = asyncio.get_running_loop().create_task(loop_body, name=f"optisync sync {key!r}")
        completion = SyncCompletion(key, task)
        self._device.claim(key, completion)
        return completion

    async def _sync_loop(
        self, key: Hashable, value: Any, local_revision: int, spec: _LoopSpec[S]
    ) -> None:
        device = self._device
        book = device.book(key)
        sent_local_revision = local_revision
        optimistic_value = value
        requests = 0
        try:
            while True:
                receipt = _Receipt(book)
                device.publish(
                    RequestSent(
                        key=key,
                        device_id=device.device_id,
                        local_revision=sent_local_revision,
                        server_revision=book.server_revision,
                        value=value,
                        follow_up=requests > 0,
                    )
                )
                requests += 1
                response = await spec.send(value, sent_local_revision, receipt)
                if spec.with_revisions and receipt.revision is None:
                    raise MissingServerRevisionError(key)
                response_revision = -1 if receipt.revision is None else receipt.revision
                known = device.known_server_revision(
                    key, spec.get_server_revision_from_state(self._state)
                )
                held, book.held_push = book.held_push, None
                if spec.with_revisions:
                    current = book.local_value
                    verdict = judge_response(
                        held_push_revision=None if held is None else held.push.server_revision,
                        response_revision=response_revision,
                        local_revision=book.local_revision,
                        sent_local_revision=sent_local_revision,
                        value_changed=current != value,
                        known_server_revision=known,
                    )
                else:
                    current = spec.get_value_from_state(self._state)
                    asked = spec.if_should_send_another_request(
                        state_value=current, sent_value=value, request_count=requests
                    )
                    verdict = ResponseVerdict.FOLLOW_UP if asked else ResponseVerdict.STABLE
                if held is not None and verdict is not ResponseVerdict.PUSH_WINS:
                    self._drop_held(key, held)  # our write landed after it
                if verdict is ResponseVerdict.FOLLOW_UP:
                    if (
                        spec.max_follow_up_requests != -1
                        and requests >= spec.max_follow_up_requests
                    ):
                        raise TooManyFollowUpsError(key, spec.max_follow_up_requests)
                    device.publish(
                        FollowUpScheduled(
                            key=key,
                            device_id=device.device_id,
                            local_revision=book.local_revision,
                            server_revision=known,
                            sent_local_revision=sent_local_revision,
                            value=current,
                        )
                    )
                    value, sent_local_revision = current, book.local_revision
                    continue
                self._settle(
                    key, response, response_revision, known, spec.apply_server_response_to_state
                )
                if held is not None:  # PUSH_WINS: the newer write is shown now
                    self._apply_held(key, held)
                break
        except asyncio.CancelledError:
            book.held_push = None  # as for any failed write: the intent is resent later
            device.release(key)  # shutting down: no reload, no spec.on_finish
            raise
        except Exception as error:
            # Our write's fate is unknown: recovering is on_finish's (a reload) or the
            # resent intent's, as for any failed write, so the held push is dropped.
            book.held_push = None
            device.release(key)
            device.publish(
                SyncFailed(
                    key=key,
                    device_id=device.device_id,
                    local_revision=book.local_revision,
                    server_revision=book.server_revision,
                    error=error,
                    requests=requests,
                )
            )
            await self._run_on_finish(spec.on_finish, optimistic_value, error)
            raise
        device.release(key)
        device.publish(
            SyncFinished(
                key=key,
                device_id=device.device_id,
                local_revision=book.local_revision,
                server_revision=book.server_revision,
                requests=requests,
            )
        )
        await self._run_on_finish(spec.on_finish, optimistic_value, None)

    def _settle(
        self,
        key: Hashable,
        response: Any,
        response_revision: int,
        known: int,
        apply_server_response_to_state: Callable[[S, Any], S | None] | None,
    ) -> None:
        device = self._device
        book = device.book(key)
        if response_revision < known:
            device.publish(
                StaleResponseIgnored(
                    key=key,
                    device_id=device.device_id,
                    local_revision=book.local_revision,
                    server_revision=known,
                    response_revision=response_revision,
                )
            )
            return
        if response is None or apply_server_response_to_state is None:
            return
        new_state = apply_server_response_to_state(self._state, response)
        if new_state is not None:
            self.emit(new_state)
        device.publish(
            ResponseApplied(
                key=key,
                device_id=device.device_id,
                local_revision=book.local_revision,
                server_revision=known,
                response=response,
            )
        )

    def _apply_held(self, key: Hashable, held: HeldPush) -> None:
        """Show a held push that turned out newer than our write (if still the newest)."""
        if held.push.server_revision < self._device.server_revision(key):
            self._drop_held(key, held)
        else:
            self._apply_push(key, held.push, held.apply)

    def _drop_held(self, key: Hashable, held: HeldPush) -> None:
        device = self._device
        if device.observed:
            device.publish(
                PushIgnoredStale(
                    key=key,
                    device_id=device.device_id,
                    local_revision=device.local_revision(key),
                    server_revision=device.server_revision(key),
                    push_revision=held.push.server_revision,
                    from_device_id=held.push.device_id,
                )
            )

    def _apply_push(
        self, key: Hashable, push: PushMetadata, apply: Callable[[S, int], S | None]
    ) -> None:
        device = self._device
        book = device.book(key)
        new_state = apply(self._state, push.server_revision)
        book.server_revision = push.server_revision
        book.latest_change_from_push = True
        if new_state is not None:
            self.emit(new_state)
        if device.observed:
            device.publish(
                PushApplied(
                    key=key,
                    device_id=device.device_id,
                    local_revision=book.local_revision,
                    server_revision=push.server_revision,
                    from_device_id=push.device_id,
                    push_local_revision=push.local_revision,
                )
            )

    async def _run_on_finish(
        self, on_finish: OnFinish[S] | None, optimistic_value: Any, error: BaseException | None
    ) -> None:
        if on_finish is None:
            return
        if _takes_optimistic_value(on_finish):
            result = on_finish(optimistic_value, error)  # type: ignore[call-arg]
        else:
            result = on_finish(error)  # type: ignore[call-arg]
        if inspect.isawaitable(result):
            result = await result
        if result is not None:
            self.emit(result)

    # -- server push ---------------------------------------------------------------

    def server_push(
        self,
        *,
        key: Hashable,
        push_metadata: PushMetadata | Iterable[int],
        get_server_revision_from_state: Callable[[S], int],
        apply_server_push_to_state: Callable[[S, int], S | None],
    ) -> PushVerdict:
        """Apply a server push if it is news, or hold it back while the key has a
        request in flight; see :func:`app.sync.rules.judge_push`."""
        # Called once per push on every device (2,000 times for a burst of 20 taps
        # on 100 devices): plain ints skip the per-field checks, the book is looked
        # up once, and events are built only when someone listens.
        push = push_metadata
        if type(push) is not PushMetadata:
            push = PushMetadata(*push)
        server_revision, local_revision, from_device_id = push
        if not (
            type(server_revision) is int
            and type(local_revision) is int
            and type(from_device_id) is int
        ):
            for revision in push:
                _check_revision(revision)
        device = self._device
        book = device.book(key)
        # What the state knows raises what the device knows (e.g. after a restart).
        from_state = get_server_revision_from_state(self._state)
        if from_state > book.server_revision:
            book.server_revision = from_state
        known = book.server_revision
        device_id = device.device_id
        verdict = judge_push(
            push,
            device_id=device_id,
            local_revision=book.local_revision,
            known_server_revision=known,
            in_flight=book.loop is not None,
        )
        if verdict is not _STALE and book.held_push is not None:
            # A newer write than the held one: the held one is no longer the server's.
            held, book.held_push = book.held_push, None
            self._drop_held(key, held)
        if verdict is _APPLY:
            # Inline rather than _apply_push: this is the hot path of every push.
            new_state = apply_server_push_to_state(self._state, server_revision)
            book.server_revision = server_revision
            book.latest_change_from_push = True
            if new_state is not None:
                self.emit(new_state)
            if device.observed:
                device.publish(
                    PushApplied(
                        key=key,
                        device_id=device_id,
                        local_revision=book.local_revision,
                        server_revision=server_revision,
                        from_device_id=from_device_id,
                        push_local_revision=local_revision,
                    )
                )
        elif verdict is _SELF_ECHO:
            book.server_revision = server_revision
            if device.observed:
                device.publish(
                    SelfEchoAcknowledged(
                        key=key,
                        device_id=device_id,
                        local_revision=book.local_revision,
                        server_revision=server_revision,
                        push_local_revision=local_revision,
                    )
                )
        elif verdict is _HOLD:
            book.server_revision = server_revision
            book.held_push = HeldPush(push, apply_server_push_to_state)
            if device.observed:
                device.publish(
                    PushHeld(
                        key=key,
                        device_id=device_id,
                        local_revision=book.local_revision,
                        server_revision=server_revision,
                        from_device_id=from_device_id,
                        push_local_revision=local_revision,
                    )
                )
        elif device.observed:
            device.publish(
                PushIgnoredStale(
                    key=key,
                    device_id=device_id,
                    local_revision=book.local_revision,
                    server_revision=known,
                    push_revision=server_revision,
                    from_device_id=from_device_id,
                )
            )
        return verdict
