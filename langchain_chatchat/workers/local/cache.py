"""The per-user cache of converted weights, one per machine user and shared by every venv.

Entries live in `<cache>/models/<stem>-<key>`, where the key is a hash of the source file's
content: a reinstall or a second venv with the same file reuses the entry, a changed file gets
a new one. Entries are written into a `.converting-*` directory and renamed into place, so a
crash never leaves a half entry that later loads. Each load touches `.last-used`, which is what
`chatchat cache prune --older-than` goes by.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "CHATCHAT_CACHE_DIR"
_LAST_USED = ".last-used"
_STAGING = ".converting-"
_KEY_LENGTH = 16


def cache_dir() -> Path:
    """$CHATCHAT_CACHE_DIR, else $XDG_CACHE_HOME/langchain-chatchat, else
    ~/.cache/langchain-chatchat."""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "langchain-chatchat"


def models_dir() -> Path:
    return cache_dir() / "models"


def content_key(path: Path) -> str:
    """A hash of the file's bytes (not its path, size or time)."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()[:_KEY_LENGTH]


def identity_key(identity: str) -> str:
    """A hash of a name, for sources that are not local files."""
    return hashlib.sha256(identity.encode()).hexdigest()[:_KEY_LENGTH]


def converted_dir(stem: str, key: str) -> Path:
    return models_dir() / f"{stem}-{key}"


def mark_used(entry: Path) -> None:
    (entry / _LAST_USED).touch()


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    size: int
    """Bytes on disk."""
    last_used: float
    """Unix time of the last load (or of the conversion)."""
    complete: bool
    """False for a `.converting-*` directory a crashed or running conversion left."""

    @property
    def name(self) -> str:
        return self.path.name


def entries() -> list[CacheEntry]:
    """Every entry in the cache, oldest use first."""
    root = models_dir()
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if not path.is_dir():
            continue
        files = [item for item in path.rglob("*") if item.is_file()]
        marker = path / _LAST_USED
        used = marker.stat().st_mtime if marker.exists() else path.stat().st_mtime
        found.append(
            CacheEntry(
                path=path,
                size=sum(item.stat().st_size for item in files),
                last_used=used,
                complete=not path.name.startswith(_STAGING),
            )
        )
    return sorted(found, key=lambda entry: entry.last_used)


def prune(*, older_than_days: float | None = None, everything: bool = False) -> list[CacheEntry]:
    """Delete entries unused for `older_than_days` (all of them with `everything`), and the
    leftovers of conversions that have not been touched for an hour; returns what was removed.

    A removed entry is rebuilt by the next load that needs it.
    """
    now = time.time()
    removed = []
    for entry in entries():
        age = now - entry.last_used
        stale_staging = not entry.complete and age > 3600
        too_old = older_than_days is not None and age > older_than_days * 86400
        if everything or stale_staging or (entry.complete and too_old):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry)
    return removed
