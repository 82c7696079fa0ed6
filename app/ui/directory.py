"""Names for device ids, so windows can say "overridden by Device B" instead of a number."""

from __future__ import annotations

__all__ = ["EXTERNAL_DEVICE_ID", "DeviceDirectory"]

EXTERNAL_DEVICE_ID = 4_242_424_242
"""The device id the server window writes with for "change from another device"."""


class DeviceDirectory:
    """device id → display name, shared by every window of one process."""

    def __init__(self) -> None:
        self._names: dict[int, str] = {EXTERNAL_DEVICE_ID: "another device"}

    def add(self, device_id: int, name: str) -> None:
        self._names[device_id] = name

    def name(self, device_id: int | None) -> str:
        if device_id is None or device_id < 0:
            return "another device"
        found = self._names.get(device_id)
        return found if found is not None else f"device #{device_id % 10_000:04d}"
