"""Failures release the key, run on_finish(error) and reach whoever awaits."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from app.sync import MissingServerRevisionError, TooManyFollowUpsError
from tests.core.helpers import KEY, HeldServer, LikeCubit, LikeState
from tests.timeouts import TIMEOUT


class Reload:
    """An on_finish that records its error and 'reloads' on failure."""

    def __init__(self, cubit: LikeCubit, server_value: bool) -> None:
        self.cubit = cubit
        self.server_value = server_value
        self.errors: list[BaseException | None] = []

    def __call__(self, error: BaseException | None) -> LikeState | None:
        self.errors.append(error)
        if error is None:
            return None
        return replace(
            self.cubit.state, liked=self.server_value, reloads=self.cubit.state.reloads + 1
        )


async def test_missing_inform_server_revision_fails_with_a_clear_error() -> None:
    """A send that forgets inform_server_revision raises MissingServerRevisionError."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.toggle()
    (await server.request(1)).answer(1, inform=False)
    with pytest.raises(MissingServerRevisionError, match="inform_server_revision"):
        await asyncio.wait_for(done, TIMEOUT)
    assert isinstance(MissingServerRevisionError(KEY), RuntimeError)
    assert not cubit.device.in_flight(KEY)


async def test_error_from_the_server_releases_the_key_and_reloads_via_on_finish() -> None:
    """on_finish(error) runs and its state is emitted, then the error is raised."""
    server = HeldServer()
    cubit = LikeCubit(server)
    reload = Reload(cubit, server_value=False)
    done = cubit.set_liked(True, on_finish=reload)
    (await server.request(1)).fail(ConnectionError("server went away"))
    with pytest.raises(ConnectionError, match="went away"):
        await asyncio.wait_for(done, TIMEOUT)
    assert [type(error) for error in reload.errors] == [ConnectionError]
    assert cubit.state == LikeState(liked=False, reloads=1)
    assert not cubit.device.in_flight(KEY)
    assert cubit.kinds()[-1] == "SyncFailed"


async def test_on_finish_gets_none_on_success_and_none_result_changes_nothing() -> None:
    """A successful loop calls on_finish(None); returning None emits nothing."""
    server = HeldServer()
    cubit = LikeCubit(server)
    reload = Reload(cubit, server_value=False)
    done = cubit.set_liked(True, on_finish=reload)
    (await server.request(1)).answer(1)
    await asyncio.wait_for(done, TIMEOUT)
    assert reload.errors == [None]
    assert cubit.state.liked is True


async def test_async_on_finish_is_awaited_and_its_state_emitted() -> None:
    """on_finish may be a coroutine function, as a reload from the server is."""
    server = HeldServer()
    cubit = LikeCubit(server)

    async def reload(error: BaseException | None) -> LikeState | None:
        return None if error is None else LikeState(liked=False, reloads=1)

    done = cubit.set_liked(True, on_finish=reload)
    (await server.request(1)).fail(TimeoutError("no ack"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(done, TIMEOUT)
    assert cubit.state.reloads == 1


async def test_follow_up_limit_sends_at_most_n_requests_in_all() -> None:
    """max_follow_up_requests=N sends N requests in all; needing one more fails the
    loop with TooManyFollowUpsError, releases the key and runs on_finish."""
    server = HeldServer()
    cubit = LikeCubit(server)
    errors: list[BaseException | None] = []
    done = cubit.toggle(max_follow_up_requests=2, on_finish=errors.append)
    for number in range(1, 3):
        request = await server.request(number)
        cubit.toggle()  # keep changing while every request is in flight
        request.answer(number)
    with pytest.raises(TooManyFollowUpsError, match="Too many follow-up requests"):
        await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 2  # the first request and one follow-up
    assert isinstance(errors[-1], TooManyFollowUpsError)
    assert not cubit.device.in_flight(KEY)
    cubit.toggle()  # the key is usable again
    assert cubit.device.in_flight(KEY)
    (await server.request(3)).answer(10)


async def test_a_stable_loop_at_the_limit_succeeds() -> None:
    """A loop that needs no more requests than the limit ends normally."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.toggle(max_follow_up_requests=1)
    (await server.request(1)).answer(1)
    await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 1


async def test_a_limit_below_one_is_refused_and_changes_nothing() -> None:
    """max_follow_up_requests=0 (or below -1) raises ValueError before showing anything."""
    server = HeldServer()
    cubit = LikeCubit(server)
    for limit in (0, -2):
        with pytest.raises(ValueError, match="max_follow_up_requests"):
            cubit.toggle(max_follow_up_requests=limit)
    assert cubit.state.liked is False
    assert not cubit.device.in_flight(KEY)
    assert cubit.events == []


async def test_unlimited_follow_ups_with_minus_one() -> None:
    """max_follow_up_requests=-1 lifts the limit."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.toggle(max_follow_up_requests=-1)
    for number in range(1, 6):
        request = await server.request(number)
        if number < 5:
            cubit.toggle()
        request.answer(number)
    await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 5


async def test_inform_server_revision_rejects_a_non_integer() -> None:
    """Revisions are ints: a string or bool passed to inform_server_revision fails the loop."""
    server = HeldServer()
    cubit = LikeCubit(server)

    async def send(value: Any, local_revision: int, device_id: int, inform: Any) -> Any:
        inform("12")
        return value

    with pytest.raises(TypeError, match="must be an int"):
        await asyncio.wait_for(cubit.toggle(send=send), TIMEOUT)
    assert cubit.device.server_revision(KEY) == -1


async def test_cancelled_loop_releases_the_key_without_on_finish() -> None:
    """Shutting down cancels the loop; the key is free and on_finish is not called."""
    server = HeldServer()
    cubit = LikeCubit(server)
    errors: list[BaseException | None] = []
    done = cubit.toggle(on_finish=errors.append)
    (await server.request(1)).reply.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(done, TIMEOUT)
    assert not cubit.device.in_flight(KEY)
    assert errors == []


async def test_failing_event_listener_does_not_break_the_sync_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An observer that raises is logged; the request still completes."""
    server = HeldServer()
    cubit = LikeCubit(server)

    def broken(event: object) -> None:
        raise RuntimeError("observer bug")

    cubit.device.subscribe(broken)
    done = cubit.toggle()
    (await server.request(1)).answer(1)
    await asyncio.wait_for(done, TIMEOUT)
    assert cubit.kinds()[-1] == "SyncFinished"
    assert "observer bug" in caplog.text
