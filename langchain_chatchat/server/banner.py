"""What `chatchat serve` prints before it starts listening: the version, where the config came
from, every model (kind, provider, replicas, where each runs), whether keys are needed, and
the URLs to open next. Nothing secret: URLs are printed without user info or query.
"""

from __future__ import annotations

from collections.abc import Iterable

from langchain_chatchat import __version__
from langchain_chatchat.server.config import ServerSettings
from langchain_chatchat.server.registry import ModelRegistry, ServedModel
from langchain_chatchat.server.remote import public_url


def banner(
    registry: ModelRegistry, settings: ServerSettings, config_source: str, base_url: str
) -> str:
    """The start-up text; `config_source` says which file (or which default) was used."""
    models = list(registry)
    lines = [f"langchain-chatchat {__version__}", f"config: {config_source}", "models:"]
    lines += _table(
        (served.name, served.kind, served.provider, _replicas(served), _where(served))
        for served in models
    )
    keys = len(settings.api_keys)
    lines.append(
        f"auth: on ({keys} API key{'s' if keys != 1 else ''}; clients send"
        " 'Authorization: Bearer <key>', the browser pages ask for one)"
        if keys
        else "auth: off (no server.api_keys)"
    )
    lines.append("open:")
    links = [
        (f"{base_url}/", "chat in the browser"),
        (f"{base_url}/docs", "API docs (Swagger UI; ReDoc at /redoc)"),
        (f"{base_url}/v1", "OpenAI-compatible base URL (openai SDK, ChatOpenAI)"),
    ]
    links += [
        (f"{base_url}/{served.name}/playground/", f"LangServe playground of {served.name}")
        for served in models
    ]
    if settings.metrics:
        links.append((f"{base_url}/metrics", "Prometheus metrics"))
    lines += _table(links)
    return "\n".join(lines)


def _replicas(served: ServedModel) -> str:
    count = len(served.pool.replicas)
    return f"{count} replica{'s' if count != 1 else ''}"


def _where(served: ServedModel) -> str:
    """Each replica's upstream: `in this process` for local models, else its base URL."""
    places = []
    for replica in served.pool.replicas:
        model = replica.model
        url = getattr(model, "url", None) or getattr(model, "base_url", None)
        if url:
            places.append(public_url(str(url)))
        elif getattr(model, "provider", None) == "local":
            places.append("in this process")
        else:
            places.append(f"{served.provider}'s default endpoint")
    return ", ".join(dict.fromkeys(places))


def _table(rows: Iterable[tuple[str, ...]]) -> list[str]:
    rows = list(rows)
    if not rows:
        return []
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    return [
        "  "
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
