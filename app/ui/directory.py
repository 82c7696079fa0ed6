"""Names for device ids, so windows say "overridden by Device B" instead of a number."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["EXTERNAL_DEVICE_ID", "DeviceDirectory"]

EXTERNAL_DEVICE_ID = 4_242_424_242
"""The device id the server window writes with for "change from another device"."""

UNKNOWN = "another device"


class DeviceDirectory:
    """device id → display name, shared by every window of one process.

    Devices of this process have their window's name. Devices that only the
    server's device list shows (other processes) are "Other device 1", "2", …
    in the order the list showed them, the same words the server window's
    table uses. Anything else is "another device".
    """

    def __init__(self) -> None:
        self._names: dict[int, str] = {EXTERNAL_DEVICE_ID: UNKNOWN}
        self._others = 0

    def add(self, device_id: int, name: str) -> None:
        self._names[device_id] = name

    def learn(self, device_ids: Iterable[int | None]) -> None:
        """Name devices the server lists that no window of this process is."""
        for device_id in device_ids:
            if device_id is not None and device_id >= 0 and device_id not in self._names:
                self._others += 1
                self._names[device_id] = f"Other device {self._others}"

    def name(self, device_id: int | None) -> str:
        if device_id is None or device_id < 0:
            return UNKNOWN
        return self._names.get(device_id, UNKNOWN)
