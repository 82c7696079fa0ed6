"""Database files as older servers left them, to check what opening one does."""

import sqlite3
from pathlib import Path

__all__ = ["write_database_from_before_spaces"]


def write_database_from_before_spaces(path: Path) -> None:
    """A database as servers before spaces made it: registers keyed by key alone."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE registers (key TEXT PRIMARY KEY, value TEXT NOT NULL,
            revision INTEGER NOT NULL, local_revision INTEGER NOT NULL DEFAULT 0,
            device_id INTEGER NOT NULL DEFAULT 0);
        CREATE INDEX registers_by_revision ON registers (revision);
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('epoch', 'old-epoch');
        INSERT INTO registers VALUES ('like/a', 'true', 3, 2, 7);
        INSERT INTO registers VALUES ('like/b', '"x"', 5, 1, 8);
        """
    )
    db.commit()
    db.close()
