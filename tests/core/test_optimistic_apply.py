"""A local change shows at once and reaches the server exactly once per burst."""

from __future__ import annotations

import asyncio

import pytest

from app.sync import DeviceContext
from tests.core.helpers import KEY, HeldServer, LikeCubit, settle
from tests.timeouts import TIMEOUT


async def test_optimistic_value_is_in_state_when_the_call_returns() -> None:
    """The optimistic value is emitted synchronously, before any await."""
    cubit = LikeCubit(HeldServer())
    seen: list[bool] = []
    cubit.subscribe(lambda state: seen.append(state.liked))
    cubit.toggle()
    assert cubit.state.liked is True
    assert seen == [True]


async def test_caller_that_never_awaits_still_gets_its_request_sent() -> None:
    """The sync loop runs as a task, so a fire-and-forget click still sends."""
    server = HeldServer()
    cubit = LikeCubit(server)
    cubit.toggle()
    request = await server.request(1)
    assert (request.value, request.local_revision) == (True, 1)
    assert request.device_id == cubit.device.device_id


async def test_only_one_request_is_in_flight_per_key() -> None:
    """Taps while a request is in flight change the state but start no second request."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.toggle()
    first = await server.request(1)
    cubit.toggle()
    cubit.toggle()
    assert cubit.device.in_flight(KEY)
    assert cubit.state.liked is True
    first.answer(1, response=None)
    await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 1  # back to the value in flight: nothing more to send


async def test_follow_up_carries_the_newest_value_and_local_revision() -> None:
    """When the value moved on during the request, one follow-up sends the latest."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    first = await server.request(1)
    cubit.set_liked(False)
    cubit.set_liked(True)
    cubit.set_liked(False)
    first.answer(1)
    follow_up = await server.request(2)
    assert (follow_up.value, follow_up.local_revision) == (False, 4)
    follow_up.answer(2)
    await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 2
    assert cubit.state.liked is False
    assert not cubit.device.in_flight(KEY)


async def test_taps_before_the_loop_starts_still_get_their_follow_up() -> None:
    """Clicks handled before the loop's first step still reach the server as a follow-up."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    cubit.set_liked(False)  # before the sync loop has run at all
    first = await server.request(1)
    assert (first.value, first.local_revision) == (True, 1)
    first.answer(1)
    follow_up = await server.request(2)
    assert (follow_up.value, follow_up.local_revision) == (False, 2)
    follow_up.answer(2)
    await asyncio.wait_for(done, TIMEOUT)
    assert cubit.state.liked is False


@pytest.mark.parametrize("taps", [2, 10, 100, 999, 1000])
async def test_burst_of_taps_costs_one_request_plus_one_if_the_value_moved(taps: int) -> None:
    """Taps during one request cost 1 + (final value differs from the one in flight)."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.toggle()
    first = await server.request(1)
    for _ in range(taps):
        cubit.toggle()
    first.answer(1)
    final_differs = cubit.state.liked is not True
    if final_differs:
        (await server.request(2)).answer(2)
    await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 1 + final_differs
    assert server.requests[-1].value is cubit.state.liked


async def test_no_follow_up_when_value_returns_to_the_value_in_flight() -> None:
    """Changing the value and back during a request sends nothing more."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    first = await server.request(1)
    cubit.set_liked(False)
    cubit.set_liked(True)
    first.answer(1)
    await asyncio.wait_for(done, TIMEOUT)
    assert len(server.requests) == 1
    assert cubit.state.liked is True


async def test_follow_up_when_value_returns_but_a_newer_server_write_is_known() -> None:
    """Back to the sent value still needs a follow-up if another write landed after ours."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    first = await server.request(1)
    cubit.push(False, (6, 1, 999))  # another device wrote after our request
    cubit.set_liked(True)  # the user taps again: local intent is True
    first.answer(5)
    follow_up = await server.request(2)
    assert follow_up.value is True
    follow_up.answer(7)
    await asyncio.wait_for(done, TIMEOUT)
    assert cubit.state.liked is True


async def test_response_is_applied_when_the_key_is_stable() -> None:
    """The server's confirmed value replaces the optimistic one at the end."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    (await server.request(1)).answer(3, response=False)  # the server normalised the value
    await asyncio.wait_for(done, TIMEOUT)
    assert cubit.state.liked is False
    assert cubit.device.server_revision(KEY) == 3


async def test_none_response_leaves_the_optimistic_value() -> None:
    """A response of None is recorded but not applied."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.set_liked(True)
    (await server.request(1)).answer(3, response=None)
    await asyncio.wait_for(done, TIMEOUT)
    assert cubit.state.liked is True
    assert "ResponseApplied" not in cubit.kinds()


async def test_key_is_released_after_the_loop_so_the_next_tap_sends_again() -> None:
    """After a loop ends, the next change starts a new request."""
    server = HeldServer()
    cubit = LikeCubit(server)
    done = cubit.toggle()
    (await server.request(1)).answer(1)
    await asyncio.wait_for(done, TIMEOUT)
    cubit.toggle()
    second = await server.request(2)
    assert (second.value, second.local_revision) == (False, 2)
    second.answer(2)


async def test_calls_on_a_key_in_flight_join_the_running_loop() -> None:
    """Every call returns an awaitable that ends with the key's loop."""
    server = HeldServer()
    cubit = LikeCubit(server)
    first_call = cubit.toggle()
    request = await server.request(1)
    joined = cubit.toggle()
    assert not joined.done()
    request.answer(1)
    (await server.request(2)).answer(2)
    await asyncio.wait_for(asyncio.gather(first_call, joined), TIMEOUT)
    assert first_call.done()
    assert joined.done()


async def test_cancelling_an_awaiter_does_not_cancel_the_sync_loop() -> None:
    """Awaiting is observation: a cancelled waiter leaves the request running."""
    server = HeldServer()
    cubit = LikeCubit(server)
    completion = cubit.toggle()
    request = await server.request(1)
    waiting = asyncio.Event()

    async def wait_for_completion() -> None:
        waiting.set()
        await completion

    waiter = asyncio.create_task(wait_for_completion())
    await asyncio.wait_for(waiting.wait(), TIMEOUT)
    waiter.cancel()
    request.answer(1)
    await asyncio.wait_for(completion, TIMEOUT)
    assert waiter.cancelled()
    assert cubit.state.liked is True


async def test_two_devices_in_one_process_do_not_share_locks() -> None:
    """Each DeviceContext is its own device: a key in flight on one is free on another."""
    server = HeldServer()
    first, second = LikeCubit(server), LikeCubit(server)
    first.toggle()
    second.toggle()
    one, two = await server.request(1), await server.request(2)
    assert one.device_id != two.device_id
    one.answer(1)
    two.answer(2)


async def test_cubits_on_one_device_share_its_lock_and_revisions() -> None:
    """Two cubits built with the same context coalesce on the same key."""
    server = HeldServer()
    device = DeviceContext(device_id=42)
    first, second = LikeCubit(server, device), LikeCubit(server, device)
    done = first.toggle()
    request = await server.request(1)
    second.toggle()
    assert device.local_revision(KEY) == 2
    request.answer(1)
    await settle(done)
    assert len(server.requests) <= 2


async def test_optimistic_call_outside_an_event_loop_changes_nothing() -> None:
    """Called with no running loop it raises before touching the state."""
    cubit = LikeCubit(HeldServer())

    def call_off_loop() -> None:
        cubit.toggle()

    with pytest.raises(RuntimeError):
        await asyncio.wait_for(asyncio.to_thread(call_off_loop), TIMEOUT)
    assert cubit.state.liked is False
    assert cubit.device.local_revision(KEY) == 0


async def test_error_in_value_to_apply_changes_nothing() -> None:
    """A failing value_to_apply leaves the state, revisions and server untouched."""
    server = HeldServer()
    cubit = LikeCubit(server)

    def broken() -> bool:
        raise ValueError("no such item")

    with pytest.raises(ValueError, match="no such item"):
        cubit.optimistic_sync_with_push(
            key=KEY,
            value_to_apply=broken,
            apply_optimistic_value_to_state=lambda state, value: state,
            get_value_from_state=lambda state: state.liked,
            get_server_revision_from_state=lambda state: state.revision,
            send_value_to_server=server.send,
        )
    assert cubit.device.local_revision(KEY) == 0
    assert not server.requests
