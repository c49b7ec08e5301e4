"""The LangServe playground's page (`/<model>/playground/`), served with a Content-Security-Policy
and, for chat models, the script that lets it send an image (`static/playground-image.js`).

LangServe renders the page (`APIHandler.playground`, its public API); this module only adds to
it. Its bundled React app is kept as built: the script adds an "Attach image" control outside
the app's root and puts the image into the last human message of the app's own requests. The
app's assets (`/<model>/playground/assets/...`) stay LangServe's.

The page's one inline script (the schemas LangServe writes into it) is allowed by its hash;
the bundle's form validator compiles JSON schemas to functions, hence `'unsafe-eval'`.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import re
from collections.abc import Sequence

from fastapi import FastAPI, Request
from langchain_core.runnables import Runnable
from langserve import APIHandler
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from langchain_chatchat.server.web import page_headers

logger = logging.getLogger("langchain_chatchat.server")

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
_HEAD_END = b"</head>"


def add_playground_page(
    app: FastAPI,
    runnable: Runnable,
    path: str,
    *,
    config_keys: Sequence[str],
    images: bool,
    max_body_size: int,
) -> None:
    """Serve the playground page of `runnable` (served by LangServe at `path` with `config_keys`)
    at `path`/playground/ and its `index.html`.

    Call before LangServe's own routes for `path` are added: the first matching route wins.
    """
    handler: APIHandler | None = None

    async def playground_page(request: Request) -> Response:
        nonlocal handler
        if handler is None:  # on first use: building one takes LangServe about 0.1 s
            handler = await run_in_threadpool(
                APIHandler, runnable, path=path, config_keys=config_keys
            )
        page = await handler.playground("", request)
        if page.status_code != 200:
            return page
        body = bytes(page.body)
        root = request.scope.get("root_path", "").rstrip("/")
        if images:
            body = _with_image_script(body, root, max_body_size)
        return Response(body, media_type="text/html", headers=page_headers(_policy(body)))

    for route in (f"{path}/playground/", f"{path}/playground/index.html"):
        app.add_api_route(
            route,
            playground_page,
            methods=["GET"],
            include_in_schema=False,
        )


def _with_image_script(body: bytes, root: str, max_body_size: int) -> bytes:
    tags = (
        f'<link rel="stylesheet" href="{html.escape(root)}/web/static/playground-image.css">'
        f'<script src="{html.escape(root)}/web/static/images.js"></script>'
        f'<script src="{html.escape(root)}/web/static/playground-image.js"'
        f' data-max-body="{max_body_size}"></script>'
    )
    if _HEAD_END not in body:  # not LangServe's page as we know it: serve it as it is
        logger.warning("LangServe's playground page has no </head>: no image control on it")
        return body
    return body.replace(_HEAD_END, tags.encode() + _HEAD_END, 1)


def _policy(body: bytes) -> str:
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(body)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes} 'unsafe-eval';"
        " style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self';"
        " frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
