"""The link's public names are exactly what ``__all__`` lists, and it needs no Qt."""

from __future__ import annotations

import importlib
import subprocess
import sys

import app.link

MODULES = [
    "backoff",
    "catalogue",
    "client",
    "engine",
    "device",
    "errors",
    "keystatus",
    "likes",
    "status",
    "store",
]


def test_every_exported_name_exists_and_every_module_declares_all() -> None:
    """Each module lists its public names in __all__ and each of them exists."""
    for name in app.link.__all__:
        assert hasattr(app.link, name), name
    for module_name in MODULES:
        module = importlib.import_module(f"app.link.{module_name}")
        assert module.__all__, module_name
        for name in module.__all__:
            assert hasattr(module, name), f"{module_name}.{name}"


def test_importing_the_link_loads_no_qt() -> None:
    """app.link runs on a plain asyncio loop: importing it pulls in no Qt module."""
    code = (
        "import sys, app.link; print(any(m.startswith(('PySide6', 'qasync')) for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_the_bundled_catalogue_loads_with_unique_ids() -> None:
    """app/assets/catalogue.json parses into items with unique ids and existing icons."""
    items = app.link.load_catalogue()
    assert len(items) >= 12
    assert len({item.id for item in items}) == len(items)
    for item in items:
        assert (app.link.ASSETS_DIR / "icons" / item.icon).exists(), item.icon
