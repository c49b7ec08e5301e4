"""`chatchat cache list|prune`: see and reclaim the converted-weights cache (see
workers/local/cache.py), which every venv of this user shares."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from langchain_chatchat.workers.local.cache import CacheEntry, cache_dir, entries, prune

cache_app = typer.Typer(
    help="The converted-weights cache shared by every venv (CHATCHAT_CACHE_DIR).",
    no_args_is_help=True,
)


@cache_app.command("list")
def list_entries() -> None:
    """Each cached model: size, last use, path."""
    found = entries()
    typer.echo(f"{cache_dir() / 'models'}: {len(found)} entries, {_size(found)}")
    for entry in found:
        state = "" if entry.complete else "  (unfinished conversion)"
        typer.echo(
            f"  {entry.size / 2**20:9.1f} MiB  used {_age(entry.last_used):>9}  {entry.name}{state}"
        )


@cache_app.command("prune")
def prune_entries(
    older_than: Annotated[
        float, typer.Option(help="Remove entries not used for this many days.", min=0)
    ] = 30,
    all_entries: Annotated[
        bool, typer.Option("--all", help="Remove every entry (they are rebuilt when needed).")
    ] = False,
) -> None:
    """Remove unused entries and leftovers of interrupted conversions."""
    removed = prune(older_than_days=older_than, everything=all_entries)
    for entry in removed:
        typer.echo(f"removed {entry.name} ({entry.size / 2**20:.1f} MiB)")
    typer.echo(f"freed {_size(removed)}")


def _size(found: list[CacheEntry]) -> str:
    return f"{sum(entry.size for entry in found) / 2**20:.1f} MiB"


def _age(moment: float) -> str:
    seconds = max(0.0, time.time() - moment)
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f}{unit} ago"
    return "just now"
