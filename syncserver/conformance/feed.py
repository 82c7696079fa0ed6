"""Checks: the demo controls and the observer feed (servers with ``--allow-chaos``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from .messages import expect_error, expect_never_written
from .peer import Message, Peer, expect
from .registry import Context, check

__all__ = ["OBSERVE_INTERVAL", "reset_chaos"]

OBSERVE_INTERVAL = 0.05
"""An observer gets at most one server_state per this many seconds."""

_TOLERANCE = 0.5
"""Timing is measured where frames arrive, so allow them to bunch up by this share."""

_DEFAULTS = {
    "write_delay": 0.0,
    "ack_delay": 0.0,
    "push_enabled": True,
    "push_delay": 0.0,
    "push_jitter": 0.0,
    "fail_next": 0,
}


async def reset_chaos(peer: Peer) -> Message:
    return await peer.request({"type": "chaos", "reset": True}, "chaos_state")


@contextlib.asynccontextmanager
async def _chaos(ctx: Context) -> AsyncIterator[Peer]:
    """A connection for demo controls; every control is back to default afterwards."""
    peer, _ = await ctx.device()
    try:
        yield peer
    finally:
        with contextlib.suppress(Exception):
            await reset_chaos(peer)


def _own_entry(state: Message, peer: Peer) -> Message | None:
    for device in state["devices"]:
        if device.get("remote") == peer.local_address:
            found: Message = device
            return found
    return None


@check(needs_chaos=True)
async def a_chaos_message_answers_with_the_settings_in_force(ctx: Context) -> None:
    """chaos sets the given controls and answers chaos_state naming its request_id."""
    async with _chaos(ctx) as peer:
        state = await peer.request(
            {"type": "chaos", "request_id": "c1", "ack_delay": 0.25}, "chaos_state"
        )
        expect(state["type"] == "chaos_state" and state["request_id"] == "c1", f"got {state}")
        expect(state["settings"] == {**_DEFAULTS, "ack_delay": 0.25}, f"settings {state}")
        state = await reset_chaos(peer)
        expect(state["settings"] == _DEFAULTS, f"reset left {state['settings']}")
        refused = await peer.request(
            {"type": "chaos", "request_id": "c2", "write_delay": 61}, "chaos_state"
        )
        expect_error(refused, "bad_request", "c2")


@check(needs_chaos=True)
async def fail_next_refuses_the_next_request_with_injected_failure(ctx: Context) -> None:
    """fail_next 1: the next set is refused (injected_failure, nothing stored), then all is well."""
    async with _chaos(ctx) as peer:
        await peer.request({"type": "chaos", "fail_next": 1}, "chaos_state")
        key = ctx.key()
        expect_error(await peer.set(key, 1, 1, request_id="f"), "injected_failure", "f")
        await expect_never_written(ctx, key)
        ack = await peer.set(key, 2, 2)
        expect(ack["type"] == "ack", f"the set after the failure got {ack}")


@check(needs_chaos=True)
async def observe_starts_a_feed_of_the_server_state(ctx: Context) -> None:
    """observe: a server_state soon, listing this connection, counts, totals, values, settings."""
    peer, device_id = await ctx.device()
    await peer.set(ctx.key(), 1, 1)
    await peer.send({"type": "observe", "request_id": "o"})
    state = await peer.recv_type("server_state")
    for name, kind in (
        ("revision", int),
        ("devices", list),
        ("requests_received", int),
        ("requests_in_flight", int),
        ("values", list),
        ("chaos", dict),
    ):
        expect(isinstance(state.get(name), kind), f"server_state.{name} is {state.get(name)!r}")
    own = _own_entry(state, peer)
    expect(own is not None, f"this connection ({peer.local_address}) is not in devices")
    assert own is not None
    expect(own["device_id"] == device_id and own["requests"] >= 1, f"its entry is {own}")
    expect(state["_bytes"] <= 512 * 1024, f"a server_state of {state['_bytes']} bytes")
    for listed, total in (("values", "values_total"), ("devices", "devices_total")):
        count = state.get(total)
        expect(
            type(count) is int and count >= len(state[listed]),
            f"server_state.{total} is {count!r} for {len(state[listed])} {listed}",
        )


@check(needs_chaos=True)
async def a_hello_on_a_watched_connection_updates_the_feed(ctx: Context) -> None:
    """An observer's own hello shows in the next server_state (device_id, batch_pushes)."""
    peer = await ctx.connect()
    await peer.send({"type": "observe"})
    state = await peer.recv_type("server_state")
    own = _own_entry(state, peer)
    expect(own is not None and own["device_id"] is None, f"before its hello: {own}")
    device_id = ctx.device_id()
    await peer.hello(device_id, batch_pushes=True)
    while True:
        state = await peer.recv_type("server_state")
        own = _own_entry(state, peer)
        if own is not None and own["device_id"] == device_id:
            expect(own["batch_pushes"] is True, f"after hello batch_pushes: {own}")
            return


@check(needs_chaos=True)
async def a_new_observer_gets_states_at_most_every_50_ms(ctx: Context) -> None:
    """Under a stream of changes, a new observer's first two states are ≥ 50 ms apart."""
    writer, _ = await ctx.device()
    clock = await ctx.connect()
    observers = [await ctx.connect() for _ in range(8)]
    key = ctx.key()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def just_after_a_state() -> None:
        """Return right after the clock observer was sent a state (not a queued one)."""
        while True:
            asked = loop.time()
            await clock.recv_type("server_state")
            if loop.time() - asked > OBSERVE_INTERVAL / 5:
                return

    async def write() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            await writer.set(key, number, number)

    writing = asyncio.ensure_future(write())
    await clock.send({"type": "observe"})
    gaps = []
    try:
        for number, observer in enumerate(observers):
            # Observe late in the feed's 50 ms cycle: a state already due must not
            # follow the new observer's first one closely.
            await just_after_a_state()
            await asyncio.sleep(OBSERVE_INTERVAL * (0.6 + 0.05 * (number % 4)))
            await observer.send({"type": "observe"})
            await observer.recv_type("server_state")
            first = loop.time()
            await observer.recv_type("server_state")
            gaps.append(loop.time() - first)
            await observer.close()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await writing
    # Arrival times carry the kit's own scheduling noise, so judge the typical gap:
    # a server that breaks the rule shows gaps of a few ms in most trials.
    typical = sorted(gaps)[len(gaps) // 2]
    expect(
        typical >= OBSERVE_INTERVAL * _TOLERANCE,
        f"a new observer's first two states came {typical * 1000:.0f} ms apart "
        f"(gaps: {', '.join(f'{g * 1000:.0f}' for g in gaps)} ms)",
    )


@check(needs_chaos=True)
async def unobserve_stops_the_feed(ctx: Context) -> None:
    """After unobserve no server_state arrives, while other observers still get them."""
    peer, _ = await ctx.device()
    clock, _ = await ctx.device()
    await clock.send({"type": "observe"})
    await clock.recv_type("server_state")
    await peer.send({"type": "observe"})
    await peer.recv_type("server_state")
    await peer.send({"type": "unobserve"})
    key = ctx.key()
    ack = await peer.set(key, 1, 1)
    while True:  # until the other observer has been sent a state showing the write
        state = await clock.recv_type("server_state")
        if state["revision"] >= ack["server_revision"]:
            break
    await peer.get(key)
    late = [
        frame
        for frame in peer.skipped
        if frame["type"] == "server_state" and frame["revision"] >= ack["server_revision"]
    ]
    expect(not late, "a server_state arrived after unobserve")
