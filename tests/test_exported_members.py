"""The public names other code builds against are exported, and only those."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import app
import app.sync
import syncserver

PINNED = {
    "Cubit",
    "DeviceContext",
    "PushMetadata",
    "MissingServerRevisionError",
    "TooManyFollowUpsError",
}


def test_pinned_core_names_are_exported() -> None:
    """from app.sync import Cubit, DeviceContext, PushMetadata, ... works."""
    assert set(app.sync.__all__) >= PINNED
    for name in app.sync.__all__:
        assert hasattr(app.sync, name), name


@pytest.mark.parametrize(
    "module_name",
    sorted(
        info.name
        for package in (app, syncserver)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
        if not info.name.rsplit(".", 1)[-1].startswith("_")
    ),
)
def test_every_module_declares_its_public_names(module_name: str) -> None:
    """Each module lists __all__, and every listed name exists."""
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), module_name
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name}"
