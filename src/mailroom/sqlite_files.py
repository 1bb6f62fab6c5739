"""The files of an SQLite database of the data directory (the index, the transcripts, the web's
cache): the database and its WAL journals, and what is done with them when SQLite cannot read
the database any more."""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["database_files", "set_aside"]


def database_files(path: Path | str) -> list[str]:
    """The database and its WAL journals (``-wal``, ``-shm``), whether they exist or not."""
    return [f"{path}{suffix}" for suffix in ("", "-wal", "-shm")]


def set_aside(path: Path | str) -> str:
    """Move a damaged database and its journals to ``PATH.damaged-TIME``, for whoever wants to
    look, so that a new one can be made in its place; the name it got."""
    aside = f"{path}.damaged-{int(time.time())}"
    for name, moved in zip(database_files(path), database_files(aside), strict=True):
        if os.path.lexists(name):
            os.replace(name, moved)
    return aside
