"""The demo's catalogue of likeable items, read from the packaged ``app/assets/catalogue.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

__all__ = ["ASSETS_DIR", "CatalogueItem", "load_catalogue"]

ASSETS_DIR = Path(str(files("app") / "assets"))
"""The packaged assets (catalogue, icons, stylesheet), found through the import system
so they are there after a plain ``pip install``."""


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    """One likeable item; ``icon`` is a file name under ``app/assets/icons``."""

    id: str
    title: str
    icon: str


def load_catalogue(path: Path | None = None) -> tuple[CatalogueItem, ...]:
    """Read the catalogue (a JSON list of ``{"id", "title", "icon"}``) in file order."""
    path = ASSETS_DIR / "catalogue.json" if path is None else path
    entries = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(entries, list):
        raise ValueError(f"{path}: the catalogue must be a JSON list")
    items = tuple(
        CatalogueItem(id=str(entry["id"]), title=str(entry["title"]), icon=str(entry["icon"]))
        for entry in entries
    )
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: item ids must be unique")
    return items
