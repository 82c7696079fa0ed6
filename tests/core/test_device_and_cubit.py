"""DeviceContext bookkeeping and the plain Cubit contract."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.sync import Cubit, DeviceContext, PushVerdict
from app.sync.device import new_device_id
from tests.timeouts import TIMEOUT


def test_device_id_defaults_to_a_random_53_bit_int_fixed_for_life() -> None:
    """Each context draws its own id once, in 1 ... 2**53 - 1 (exact as a JSON number
    in JavaScript too); only ``change_device_id`` changes it."""
    ids = {DeviceContext().device_id for _ in range(50)}
    assert len(ids) == 50
    assert all(0 < device_id <= 2**53 - 1 for device_id in ids)
    assert max(ids) >= 2**48  # really drawn from 53 bits, not fewer
    device = DeviceContext()
    assert device.device_id == device.device_id


def test_a_new_device_id_is_never_0() -> None:
    """0 is reserved: a draw of 0 is drawn again."""
    draws = iter([0, 0, 7])
    assert new_device_id(lambda bits: next(draws)) == 7


@pytest.mark.parametrize("device_id", [-(2**63), 2**53, 2**63 - 1])
def test_any_signed_64_bit_device_id_is_accepted(device_id: int) -> None:
    """Ids from elsewhere (older devices, other clients) may use all 64 bits: kept
    as given, and their pushes judged exactly."""
    device = DeviceContext(device_id=device_id)
    assert device.device_id == device_id
    cubit: Cubit[int] = Cubit(0, device=device)
    verdict = cubit.server_push(
        key="k",
        push_metadata=(1, 0, device_id + 1 if device_id < 2**63 - 1 else device_id - 1),
        get_server_revision_from_state=lambda _state: -1,
        apply_server_push_to_state=lambda _state, revision: revision,
    )
    assert verdict is PushVerdict.APPLY
    assert cubit.state == 1


def test_device_id_can_be_given_for_a_persistent_device() -> None:
    """A persisted id is kept as given."""
    assert DeviceContext(device_id=123).device_id == 123


def test_device_id_must_be_an_int() -> None:
    """A non-int device id is refused up front."""
    with pytest.raises(TypeError):
        DeviceContext(device_id="abc")  # type: ignore[arg-type]


def test_after_a_device_id_change_only_the_new_ids_pushes_are_our_echoes() -> None:
    """``change_device_id``: the old id's older writes are another device's and apply;
    the new id's are our echoes. Revisions known so far stay."""
    device = DeviceContext(device_id=7)
    device.restore("k", local_revision=3)
    cubit: Cubit[int] = Cubit(0, device=device)

    def push(revision: int, writer: int) -> PushVerdict:
        return cubit.server_push(
            key="k",
            push_metadata=(revision, 1, writer),
            get_server_revision_from_state=lambda _state: -1,
            apply_server_push_to_state=lambda _state, revision: revision,
        )

    assert push(1, 7) is PushVerdict.SELF_ECHO
    device.change_device_id(8)
    assert device.device_id == 8
    assert device.local_revision("k") == 3
    assert push(2, 7) is PushVerdict.APPLY
    assert push(3, 8) is PushVerdict.SELF_ECHO
    with pytest.raises(TypeError):
        device.change_device_id(True)
    assert device.device_id == 8


def test_unknown_key_reads_as_never_changed() -> None:
    """Read-only helpers answer 0 / -1 / False for a key never seen."""
    device = DeviceContext()
    assert device.local_revision("k") == 0
    assert device.server_revision("k") == -1
    assert not device.in_flight("k")
    assert not device.latest_change_from_push("k")


def test_restore_seeds_revisions_without_lowering_them() -> None:
    """Persisted revisions seed a restarted device; restore never moves backwards."""
    device = DeviceContext()
    device.restore("k", local_revision=4, server_revision=9)
    device.restore("k", local_revision=2, server_revision=3)
    assert (device.local_revision("k"), device.server_revision("k")) == (4, 9)


def test_cubit_emit_notifies_subscribers_until_unsubscribed() -> None:
    """subscribe hears every emit; the returned function stops it."""
    cubit: Cubit[int] = Cubit(0)
    heard: list[int] = []
    unsubscribe = cubit.subscribe(heard.append)
    cubit.emit(1)
    unsubscribe()
    cubit.emit(2)
    assert heard == [1]
    assert cubit.state == 2


def test_cubit_gets_its_own_device_unless_given_one() -> None:
    """Cubits without a context are separate devices; sharing one is explicit."""
    shared = DeviceContext()
    assert Cubit(0).device is not Cubit(0).device
    assert Cubit(0, device=shared).device is shared


def test_a_batch_emits_once_at_its_end() -> None:
    """Inside cubit.batch() the state changes at once and subscribers hear of it once;
    a batch that changes nothing emits nothing."""
    cubit: Cubit[int] = Cubit(0)
    heard: list[int] = []
    cubit.subscribe(heard.append)
    with cubit.batch():
        cubit.emit(1)
        with cubit.batch():
            cubit.emit(2)
        assert cubit.state == 2
        assert heard == []
        cubit.emit(3)
    assert heard == [3]
    with cubit.batch():
        pass
    assert heard == [3]


def test_a_batch_that_raises_still_tells_subscribers_once() -> None:
    """An error inside a batch propagates; what changed before it is emitted once."""
    cubit: Cubit[int] = Cubit(0)
    heard: list[int] = []
    cubit.subscribe(heard.append)

    def fail_midway() -> None:
        with cubit.batch():
            cubit.emit(1)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    assert heard == [1]
    with cubit.batch():
        cubit.emit(2)
    assert heard == [1, 2]


class _Gathering(Cubit[int]):
    """Adds up numbers during a batch and turns them into state as it ends."""

    def __init__(self) -> None:
        super().__init__(0)
        self.pending = 0
        self.endings = 0

    def _batch_ending(self) -> None:
        self.endings += 1
        self.emit(self.state + self.pending)
        self.pending = 0


def test_a_batch_lets_a_subclass_settle_once_before_subscribers_hear() -> None:
    """_batch_ending runs once, as the outermost batch ends, with emits still held."""
    cubit = _Gathering()
    heard: list[int] = []
    cubit.subscribe(heard.append)
    with cubit.batch():
        cubit.pending += 2
        with cubit.batch():
            cubit.pending += 3
        assert cubit.endings == 0
    assert cubit.endings == 1
    assert heard == [5]


def test_forgetting_server_revisions_keeps_local_ones() -> None:
    """A new server history: every known server revision goes back to -1 (unknown),
    local revisions stay."""
    device = DeviceContext(1)
    device.restore("k", local_revision=4, server_revision=9)
    device.learn_server_revision("j", 3)
    device.forget_server_revisions()
    assert (device.server_revision("k"), device.server_revision("j")) == (-1, -1)
    assert device.local_revision("k") == 4
    assert device.learn_server_revision("k", 1) == 1


async def test_apply_optimistic_sees_the_changes_own_local_revision() -> None:
    """While apply_optimistic_value_to_state runs, device.local_revision(key) is
    already this change's revision (the one its request carries)."""
    cubit: Cubit[int] = Cubit(0)
    seen: list[int] = []
    sent: list[int] = []

    def apply(state: int, value: int) -> int:
        seen.append(cubit.device.local_revision("k"))
        return value

    async def send(value: int, local_revision: int, device_id: int, inform: Any) -> int:
        sent.append(local_revision)
        inform(1)
        return value

    completion = cubit.optimistic_sync_with_push(
        key="k",
        value_to_apply=lambda: 5,
        apply_optimistic_value_to_state=apply,
        get_value_from_state=lambda state: state,
        get_server_revision_from_state=lambda state: -1,
        send_value_to_server=send,
    )
    await asyncio.wait_for(completion, TIMEOUT)
    assert seen == [1]
    assert sent == [1]
