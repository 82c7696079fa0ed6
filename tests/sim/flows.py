"""Flows of the harness' own tests: a user's own cubit, and deliberately broken ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from app.link import DeviceSession, SyncClient
from app.link.store import MemoryStore
from app.sync import Cubit, DeviceContext
from app.sync.testing import DeviceIO, FlowDevice, Likes
from syncserver.protocol import DEFAULT_SPACE, Push, Snapshot

__all__ = [
    "DeafLikes",
    "EpochBlindLikes",
    "PlainToggle",
    "SpaceBlindLikes",
    "ToggleDevice",
    "UnlockedLikes",
]

Toggles = dict[str, bool]


class ToggleDevice:
    """A user's own device: a plain cubit of booleans and the real ``SyncClient``."""

    def __init__(self, client: SyncClient, cubit: Cubit[Toggles], io: DeviceIO) -> None:
        self.client = client
        self.cubit = cubit
        self._store = io.store

    @property
    def device_id(self) -> int:
        return self.cubit.device.device_id

    async def close(self) -> None:
        await self.client.close()
        await self._store.close()


class PlainToggle:
    """One boolean per key, toggled by a tap, written with ``SyncClient.set`` and
    reloaded with ``get`` when a write fails: the README's "your own flow"."""

    def __repr__(self) -> str:
        return "PlainToggle()"

    def key(self, index: int) -> str:
        return f"toggle/{index}"

    async def open(self, io: DeviceIO) -> ToggleDevice:
        stored = await io.store.load()  # claims the identity
        device_id = stored.device_id
        if device_id is None:
            device_id = io.rng.getrandbits(62)
            io.store.put_device_id(device_id)
            await io.store.flush()
        cubit: Cubit[Toggles] = Cubit({}, device=DeviceContext(device_id))

        def apply(key: str, value: Any, metadata: tuple[int, int, int]) -> None:
            cubit.server_push(
                key=key,
                push_metadata=metadata,
                get_server_revision_from_state=lambda state: -1,
                apply_server_push_to_state=lambda state, _: {**state, key: bool(value)},
            )

        def on_pushes(pushes: Sequence[Push]) -> None:
            for push in pushes:
                apply(
                    push.key,
                    push.value,
                    (push.server_revision, push.local_revision, push.device_id),
                )

        def on_snapshot(page: Snapshot) -> None:
            for entry in page.values:
                apply(
                    entry.key,
                    entry.value,
                    (entry.server_revision, entry.local_revision, entry.device_id),
                )

        client = SyncClient(
            io.urls,
            device_id,
            on_pushes=on_pushes,
            on_snapshot=on_snapshot,
            request_timeout=io.request_timeout,
            backoff=io.backoff,
            heartbeat=io.heartbeat,
            connect=io.connect,
            rng=io.rng,
            clock=io.clock,
            space=io.space,
        )
        client.start()
        return ToggleDevice(client, cubit, io)

    def tap(self, device: FlowDevice, key: str) -> None:
        assert isinstance(device, ToggleDevice)
        cubit, client = device.cubit, device.client

        async def send(value: bool, local_revision: int, _device: int, inform: Any) -> Any:
            ack = await client.set(key, value, local_revision)
            inform(ack.server_revision)
            return ack

        async def on_finish(error: BaseException | None) -> Toggles | None:
            if error is None:
                return None
            reply = await client.get(key)  # the server's truth after a failed write
            if reply.server_revision < cubit.device.server_revision(key):
                return None  # a newer push already landed
            cubit.device.learn_server_revision(key, reply.server_revision)
            return {**cubit.state, key: bool(reply.value)}

        cubit.optimistic_sync_with_push(
            key=key,
            value_to_apply=lambda: not cubit.state.get(key, False),
            apply_optimistic_value_to_state=lambda state, value: {**state, key: value},
            get_value_from_state=lambda state: state.get(key, False),
            get_server_revision_from_state=lambda state: -1,
            send_value_to_server=send,
            apply_server_response_to_state=lambda state, ack: {**state, key: bool(ack.value)},
            on_finish=on_finish,
        )

    def read(self, device: FlowDevice, key: str) -> tuple[Any, int]:
        return device.cubit.state.get(key, False), max(device.cubit.device.server_revision(key), 0)

    def expected(self, value: Any, revision: int) -> tuple[Any, int]:
        return bool(value), revision

    def synced(self, device: FlowDevice, key: str) -> bool:
        return not device.cubit.device.in_flight(key)

    def pending(self, device: FlowDevice) -> bool:
        return bool(device.cubit.device.in_flight_keys())


class DeafLikes(Likes):
    """A broken flow for the self-test: its devices never apply a server push."""

    def __repr__(self) -> str:
        return "DeafLikes()"

    async def open(self, io: DeviceIO) -> DeviceSession:
        session = await super().open(io)
        session.client.on_pushes = lambda pushes: None
        return session


class EpochBlindLikes(Likes):
    """A broken flow for the self-test: its devices never forget an old history."""

    def __repr__(self) -> str:
        return "EpochBlindLikes()"

    async def open(self, io: DeviceIO) -> DeviceSession:
        session = await super().open(io)
        session.client.on_new_epoch = None
        return session


class UnlockedLikes(Likes):
    """A broken flow for the self-test: a second process opens a device's identity
    from a copy of its state, as two processes on one unlocked state file do."""

    def __repr__(self) -> str:
        return "UnlockedLikes()"

    async def open(self, io: DeviceIO) -> DeviceSession:
        if io.store.in_use:
            io = dataclasses.replace(
                io, store=MemoryStore(io.name, io.store.durable, space=io.space)
            )
        return await super().open(io)


class SpaceBlindLikes(Likes):
    """A broken flow for the self-test: its devices ignore the space they were put in
    and follow the default space (their stores say so too)."""

    def __repr__(self) -> str:
        return "SpaceBlindLikes()"

    async def open(self, io: DeviceIO) -> DeviceSession:
        io.store.space = DEFAULT_SPACE
        return await super().open(dataclasses.replace(io, space=DEFAULT_SPACE))
