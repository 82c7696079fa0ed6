"""optimistic_sync: the variant without push, where a changed value decides the follow-up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.sync import Cubit, SyncCompletion, TooManyFollowUpsError
from tests.timeouts import TIMEOUT


class Counter(Cubit[int]):
    def __init__(self) -> None:
        super().__init__(0)
        self.sent: list[int] = []
        self.replies: list[asyncio.Future[Any]] = []
        self.arrived = asyncio.Event()

    async def send(self, value: int) -> Any:
        self.sent.append(value)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.replies.append(reply)
        self.arrived.set()
        return await reply

    def set_to(self, value: int) -> SyncCompletion:
        return self.optimistic_sync(
            key="counter",
            value_to_apply=lambda: value,
            apply_optimistic_value_to_state=lambda state, new: new,
            get_value_from_state=lambda state: state,
            send_value_to_server=self.send,
            apply_server_response_to_state=lambda state, response: response,
        )

    async def next_reply(self) -> asyncio.Future[Any]:
        await asyncio.wait_for(self.arrived.wait(), TIMEOUT)
        self.arrived.clear()
        return self.replies[-1]


async def test_changed_value_sends_one_follow_up_with_the_latest() -> None:
    """Values set during a request coalesce into one follow-up."""
    counter = Counter()
    done = counter.set_to(1)
    first = await counter.next_reply()
    counter.set_to(2)
    counter.set_to(3)
    first.set_result(1)
    (await counter.next_reply()).set_result(3)
    await asyncio.wait_for(done, TIMEOUT)
    assert counter.sent == [1, 3]
    assert counter.state == 3


async def test_value_back_to_the_one_sent_needs_no_follow_up() -> None:
    """Same value at the response: the server already has it."""
    counter = Counter()
    done = counter.set_to(1)
    first = await counter.next_reply()
    counter.set_to(2)
    counter.set_to(1)
    first.set_result(1)
    await asyncio.wait_for(done, TIMEOUT)
    assert counter.sent == [1]


class HookedCounter(Counter):
    """A counter whose follow-up test and on_finish are given by the test."""

    def set_with(self, value: int, **options: Any) -> SyncCompletion:
        return self.optimistic_sync(
            key="counter",
            value_to_apply=lambda: value,
            apply_optimistic_value_to_state=lambda state, new: new,
            get_value_from_state=lambda state: state,
            send_value_to_server=self.send,
            **options,
        )


async def test_if_should_send_another_request_can_refuse_the_follow_up() -> None:
    """A hook that always says no stops the follow-up a changed value would cause."""
    counter = HookedCounter()
    calls: list[tuple[int, int, int]] = []

    def never(*, state_value: int, sent_value: int, request_count: int) -> bool:
        calls.append((state_value, sent_value, request_count))
        return False

    done = counter.set_with(1, if_should_send_another_request=never)
    first = await counter.next_reply()
    counter.set_with(2)
    first.set_result(None)
    await asyncio.wait_for(done, TIMEOUT)
    assert counter.sent == [1]
    assert calls == [(2, 1, 1)]


async def test_if_should_send_another_request_can_ask_for_one_more() -> None:
    """A hook that says yes sends the state's value again, counting the requests."""
    counter = HookedCounter()
    counts: list[int] = []

    def twice(*, state_value: int, sent_value: int, request_count: int) -> bool:
        counts.append(request_count)
        return request_count < 2

    done = counter.set_with(5, if_should_send_another_request=twice)
    (await counter.next_reply()).set_result(None)
    (await counter.next_reply()).set_result(None)
    await asyncio.wait_for(done, TIMEOUT)
    assert counter.sent == [5, 5]
    assert counts == [1, 2]


async def test_the_limit_holds_with_a_custom_hook() -> None:
    """max_follow_up_requests also bounds a hook that always asks for more."""
    counter = HookedCounter()

    def always(*, state_value: int, sent_value: int, request_count: int) -> bool:
        return True

    done = counter.set_with(1, if_should_send_another_request=always, max_follow_up_requests=3)
    for _ in range(3):
        (await counter.next_reply()).set_result(None)
    with pytest.raises(TooManyFollowUpsError):
        await asyncio.wait_for(done, TIMEOUT)
    assert counter.sent == [1, 1, 1]


async def test_on_finish_gets_the_optimistic_value_and_the_error() -> None:
    """on_finish(optimistic_value, error), as the reference calls it: the value of the
    call that started the loop, even after follow-ups carried later values."""
    counter = HookedCounter()
    finished: list[tuple[int, BaseException | None]] = []

    def on_finish(optimistic_value: int, error: BaseException | None) -> None:
        finished.append((optimistic_value, error))

    done = counter.set_with(1, on_finish=on_finish)
    first = await counter.next_reply()
    counter.set_with(2)
    first.set_result(None)
    (await counter.next_reply()).set_result(None)
    await asyncio.wait_for(done, TIMEOUT)
    assert finished == [(1, None)]

    failure = RuntimeError("refused")
    done = counter.set_with(7, on_finish=on_finish)
    (await counter.next_reply()).set_exception(failure)
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(done, TIMEOUT)
    assert finished[-1] == (7, failure)


async def test_a_one_argument_on_finish_still_gets_only_the_error() -> None:
    """Today's on_finish(error) keeps working, a bound method included."""
    counter = HookedCounter()
    errors: list[BaseException | None] = []
    done = counter.set_with(3, on_finish=errors.append)
    (await counter.next_reply()).set_result(None)
    await asyncio.wait_for(done, TIMEOUT)
    assert errors == [None]
