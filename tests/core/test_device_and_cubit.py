"""DeviceContext bookkeeping and the plain Cubit contract."""

from __future__ import annotations

import pytest

from app.sync import Cubit, DeviceContext


def test_device_id_defaults_to_a_random_62_bit_int_fixed_for_life() -> None:
    """Each context draws its own id once; it never changes."""
    ids = {DeviceContext().device_id for _ in range(50)}
    assert len(ids) == 50
    assert all(0 <= device_id < 2**62 for device_id in ids)
    device = DeviceContext()
    assert device.device_id == device.device_id


def test_device_id_can_be_given_for_a_persistent_device() -> None:
    """A persisted id is kept as given."""
    assert DeviceContext(device_id=123).device_id == 123


def test_device_id_must_be_an_int() -> None:
    """A non-int device id is refused up front."""
    with pytest.raises(TypeError):
        DeviceContext(device_id="abc")  # type: ignore[arg-type]


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
