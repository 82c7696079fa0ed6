"""A row's badge claims no more than the device knows: Synced only while it is online
and caught up, and never for an item nobody wrote (real server, real widgets)."""

from __future__ import annotations

from app.ui.device_window import DeviceWindow
from app.ui.help import help_html
from app.ui.item_model import ItemRole
from tests.ui.conftest import Harness


def _badge(window: DeviceWindow, item_id: str) -> str:
    label, _colour = window.model.index(window.model.row_of(item_id)).data(ItemRole.BADGE)
    return str(label)


def test_a_synced_item_reads_last_known_while_the_device_is_offline(harness: Harness) -> None:
    """Liked and confirmed: Synced; server down: Last known; back and caught up: Synced."""
    demo = harness.start(1)
    window = demo.windows[0]
    harness.click_heart(window, "coffee")
    harness.wait(lambda: _badge(window, "coffee") == "Synced")
    assert demo.server is not None
    harness.run(demo.server.stop())
    harness.wait(lambda: window.bridge.status.state != "online")
    assert _badge(window, "coffee") == "Last known"
    assert _badge(window, "sunrise") == "Last known"
    harness.run(demo.server.start())
    harness.wait(lambda: _badge(window, "coffee") == "Synced")
    assert _badge(window, "sunrise") == "Not written yet"


def test_an_item_nobody_wrote_reads_not_written_yet_until_its_first_write(
    harness: Harness,
) -> None:
    """A fresh item shows Not written yet (rev –), and Synced once a write is confirmed."""
    demo = harness.start(1)
    window = demo.windows[0]
    assert _badge(window, "sunrise") == "Not written yet"
    harness.click_heart(window, "sunrise")
    assert _badge(window, "sunrise") == "Saving…"
    harness.wait(lambda: _badge(window, "sunrise") == "Synced")


def test_the_help_explains_every_badge_a_quiet_row_can_show() -> None:
    """F1 says what Synced, Not written yet and Last known mean."""
    page = help_html()
    for label in ("Synced", "Not written yet", "Last known"):
        assert f"<b>{label}</b>" in page
