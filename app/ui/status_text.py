"""Plain words for sync phases and connection states, shared by list, header and tests."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor

from .theme import Palette

__all__ = ["BADGE_HELP", "badge_for", "badge_help", "phase_name"]

BADGE_HELP: dict[str, str] = {
    "Synced": "Nothing pending: the value shown is the newest the server holds.",
    "Not written yet": "No device has written this item: it shows the default (not "
    "liked), which is what the server answers for it. Your first tap writes it.",
    "Last known": "Nothing pending, but the device is offline or still catching up, so it "
    "cannot know whether another device wrote since: this is the newest value it heard "
    "of. It turns Synced (or Not written yet) once it is back online and caught up.",
    "Saving…": "A request for this item is on its way, or waits for the connection "
    "(it is sent on reconnect, even after a restart).",
    "Follow-up queued": "A request is in flight and you changed the value again since it "
    "left: when it is answered, one more request carries your newest value.",
    "Failed · reloaded": "The server refused the last request; the item shows the server's "
    "value again. The badge clears after a few seconds, or with your next tap.",
    "Overridden by …": "Nothing pending, but another device wrote after you: its newer "
    "write replaced your choice (last write wins).",
    "Server unavailable · retrying": "The server could not store the write just now "
    "(busy or shutting down); the device keeps it and retries with backoff.",
}


def phase_name(status: Any) -> str:
    """The phase of a ``KeyStatus`` as a plain string ("synced", "saving", ...)."""
    if status is None:
        return "synced"
    phase = status.phase
    return str(getattr(phase, "value", phase)).lower()


def badge_for(
    status: Any, by_device_name: str | None, *, online: bool = True
) -> tuple[str, QColor]:
    """The badge label and colour for one key's status; ``online``: whether the device
    is connected and caught up, the only time it can vouch for the server's value."""
    phase = phase_name(status)
    if phase == "saving":
        return "Saving…", Palette.saving
    if phase == "follow_up_queued":
        return "Follow-up queued", Palette.follow_up
    if phase == "failed":
        return "Failed · reloaded", Palette.failed
    if phase == "unavailable":
        return "Server unavailable · retrying", Palette.saving
    if phase == "overridden":
        return f"Overridden by {by_device_name or 'another device'}", Palette.overridden
    if not online:
        return "Last known", Palette.muted
    if status is None or status.server_revision <= 0:
        return "Not written yet", Palette.muted
    return "Synced", Palette.synced


def badge_help(label: str) -> str:
    """What a badge means, in a sentence (the F1 legend says the same)."""
    if label.startswith("Overridden by"):
        return BADGE_HELP["Overridden by …"]
    return BADGE_HELP.get(label, "")
