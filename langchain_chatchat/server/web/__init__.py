"""The browser side of the server, served by the package itself (no CDN, no build step):

- `/`: a small chat page (`static/index.html`, `chat.js`): pick a model, stream a chat with
  reasoning, tool calls, images, usage and latency;
- `/docs` and `/redoc`: Swagger UI and ReDoc, their assets from the `fastapi-offline` wheel,
  so both work without internet; the page shells send the API key kept by the home page;
- `/web/session`: exchanges a Bearer key for the playground's session cookie (see
  `session.py`);
- `/<model>/playground/`: LangServe's playground page, with a CSP and, for chat models, an
  "Attach image" control (see `playground.py`).

Every HTML page of ours is a static shell with no inline script, served with a strict
Content-Security-Policy (scripts from this origin only); the playground's page, LangServe's,
gets one that also admits its inline script by hash (see `playground.py`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, Response

from langchain_chatchat.server.web.session import expired_cookie, session_cookie

STATIC = Path(__file__).parent / "static"
VENDOR = Path(str(files("fastapi_offline") / "static"))
"""Swagger UI's and ReDoc's bundles, shipped in the `fastapi-offline` wheel."""

# ReDoc renders its styles inline and runs a web worker from a blob: URL; scripts stay 'self'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def page_headers(content_security_policy: str = CONTENT_SECURITY_POLICY) -> dict[str, str]:
    """The headers every HTML page of this server goes out with."""
    return {
        "content-security-policy": content_security_policy,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "cache-control": "no-cache",
    }


def install_web(app: FastAPI) -> None:
    """Mount the pages, their assets and the session endpoint on `app`."""
    app.mount("/web/static", StaticFiles(directory=STATIC), name="web-static")
    app.mount("/web/vendor", StaticFiles(directory=VENDOR), name="web-vendor")
    app.include_router(_pages())


def _page(name: str) -> Response:
    return FileResponse(STATIC / name, media_type="text/html", headers=page_headers())


def _pages() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def home() -> Response:
        return _page("index.html")

    @router.get("/docs")
    async def swagger() -> Response:
        return _page("docs.html")

    @router.get("/redoc")
    async def redoc() -> Response:
        return _page("redoc.html")

    @router.get("/favicon.ico")
    async def favicon() -> Response:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @router.post("/web/session", status_code=204)
    async def open_session(request: Request) -> Response:
        """Set the playground's session cookie; reached only with a valid Bearer key."""
        key = request.headers.get("authorization", "").partition(" ")[2].strip()
        response = Response(status_code=204)
        if key:  # with api_keys off there is nothing to remember
            secure = request.url.scheme == "https"
            response.headers["set-cookie"] = session_cookie(key, secure)
        return response

    @router.delete("/web/session", status_code=204)
    async def close_session(request: Request) -> Response:
        response = Response(status_code=204)
        response.headers["set-cookie"] = expired_cookie(request.url.scheme == "https")
        return response

    return router
