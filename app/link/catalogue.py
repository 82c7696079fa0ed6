"""The demo's catalogue of likeable items, read from ``assets/catalogue.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ASSETS_DIR", "CatalogueItem", "load_catalogue"]

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    """One likeable item; ``icon`` is a file name under ``assets/icons``."""

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
