"""Plain words for sync phases and connection states, shared by list, header and tests."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor

from .theme import Palette

__all__ = ["badge_for", "phase_name"]


def phase_name(status: Any) -> str:
    """The phase of a ``KeyStatus`` as a plain string ("synced", "saving", ...)."""
    if status is None:
        return "synced"
    phase = status.phase
    return str(getattr(phase, "value", phase)).lower()


def badge_for(status: Any, by_device_name: str | None) -> tuple[str, QColor]:
    """The badge label and colour for one key's status."""
    phase = phase_name(status)
    if phase == "saving":
        return "Saving…", Palette.saving
    if phase == "follow_up_queued":
        return "Follow-up queued", Palette.follow_up
    if phase == "failed":
        return "Failed · reloaded", Palette.failed
    if phase == "overridden":
        return f"Overridden by {by_device_name or 'another device'}", Palette.overridden
    return "Synced", Palette.synced
