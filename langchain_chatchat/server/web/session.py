"""Browser access when `server.api_keys` is on: public page shells, and a cookie for the
LangServe playground.

Our own pages (`/`, `/docs`, `/redoc`) keep the key in the tab's `sessionStorage` and send it
as `Authorization: Bearer` on every API call, so only their static shells must be public. The
LangServe playground is a bundled app that cannot send a header; for it, a page that holds
the key calls `POST /web/session` (authorized by the Bearer key like any API call) and gets a
session cookie. That cookie:

- is not the key: it is a SHA-256 digest derived from it, useless as a Bearer key on `/v1` or
  anywhere else, and invalid as soon as the key leaves the config;
- is `HttpOnly; SameSite=Strict` (and `Secure` over https), never in a URL or a log line;
- is honoured only on the LangServe routes of served models (`/<model>/...`, never `/v1`,
  `/metrics`, `/docs`...), and only for requests a browser marks `Sec-Fetch-Site: same-origin`
  (a header pages cannot forge), or for a top-level GET of the playground typed or bookmarked
  (`Sec-Fetch-Site: none`); where browsers send no fetch metadata (plain http to a host other
  than localhost), for reads, and for writes whose `Origin` is this server. A page on another
  origin of the same site (another port of localhost, which `SameSite` does not separate)
  therefore cannot use it: no CSRF.

A browser opening a playground without a valid cookie is redirected to `/?next=<playground>`,
where the home page asks for the key and comes back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "chatchat_session"
AUTHORIZED = "chatchat.browser_authorized"
"""Scope key set (to True) for requests this middleware admits; `ApiKeyMiddleware` honours it."""

PUBLIC_PATHS = frozenset({"/", "/docs", "/redoc", "/favicon.ico"})
PUBLIC_PREFIXES = ("/web/static/", "/web/vendor/")
_TOKEN_CONTEXT = b"langchain-chatchat browser session v1\0"


def session_token(api_key: str) -> str:
    """The cookie value standing for `api_key` (a one-way digest, not the key)."""
    return hashlib.sha256(_TOKEN_CONTEXT + api_key.encode()).hexdigest()


def session_cookie(api_key: str, secure: bool) -> str:
    """The `Set-Cookie` value for a browser that proved it holds `api_key`."""
    flags = "; Secure" if secure else ""
    return f"{COOKIE}={session_token(api_key)}; Path=/; HttpOnly; SameSite=Strict{flags}"


def expired_cookie(secure: bool) -> str:
    flags = "; Secure" if secure else ""
    return f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{flags}"


class BrowserAccessMiddleware:
    """Admit the public page shells and cookie-holding playground calls; send browsers that
    open a playground without a session to the home page's key form."""

    def __init__(self, app: ASGIApp, api_keys: Sequence[str], models: Iterable[str]) -> None:
        self.app = app
        self.tokens = [session_token(key).encode() for key in api_keys]
        self.prefixes = tuple(f"/{name}/" for name in models)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
                scope[AUTHORIZED] = True
            elif path.startswith(self.prefixes) and not _has_authorization(scope):
                if self._admits(scope):
                    scope[AUTHORIZED] = True
                elif _opens_playground(scope):
                    target = path[: path.index("/playground/") + len("/playground/")]
                    await _to_home(target)(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _admits(self, scope: Scope) -> bool:
        token = _cookie(scope, COOKIE.encode())
        valid = False
        for expected in self.tokens:  # compare with every token, so timing reveals nothing
            valid |= hmac.compare_digest(token, expected)
        if not valid:
            return False
        fetch_site = _header(scope, b"sec-fetch-site")
        if fetch_site:
            return fetch_site == b"same-origin" or (fetch_site == b"none" and _is_playground(scope))
        # Browsers send no fetch metadata to plain-http hosts other than localhost; there a
        # read is harmless (another origin cannot read the answer) and a write must come from
        # our own origin, which browsers always state in `Origin` on POST.
        if scope["method"] in ("GET", "HEAD"):
            return True
        origin = _header(scope, b"origin")
        return bool(origin) and origin.partition(b"://")[2] == _header(scope, b"host")


def _to_home(playground: str) -> Response:
    return RedirectResponse(f"/?next={quote(playground, safe='/')}", status_code=303)


def _is_playground(scope: Scope) -> bool:
    return scope["method"] in ("GET", "HEAD") and "/playground/" in scope["path"]


def _opens_playground(scope: Scope) -> bool:
    return _is_playground(scope) and _header(scope, b"sec-fetch-dest") in (b"document", b"")


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])


def _header(scope: Scope, name: bytes) -> bytes:
    return next((value for key, value in scope["headers"] if key == name), b"")


def _cookie(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key != b"cookie":
            continue
        for pair in value.split(b";"):
            cookie_name, _, cookie_value = pair.strip().partition(b"=")
            if cookie_name == name:
                return cookie_value
    return b""
