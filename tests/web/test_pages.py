"""The pages, their assets and browser access with `api_keys` on, over plain HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from langchain_chatchat.server.web import STATIC
from langchain_chatchat.server.web.session import COOKIE, session_token
from langchain_chatchat.testing import DashScopeEmulator
from tests.web.conftest import API_KEY

PAGES = ("/", "/docs", "/redoc")
PLAYGROUND = "/qwen-plus/playground/"
EXTERNAL = re.compile(r"""(?:https?:)?//(?!127\.0\.0\.1|localhost)[A-Za-z0-9.-]+\.[a-z]{2,}""")
ASSET = re.compile(r'(?:<script src|<link [^>]*href)="([^"]+)"')
SAME_ORIGIN = {"sec-fetch-site": "same-origin", "sec-fetch-mode": "cors"}


def _cookie(key: str = API_KEY) -> dict[str, str]:
    return {"cookie": f"{COOKIE}={session_token(key)}"}


@pytest.mark.parametrize("page", PAGES)
def test_pages_are_public_and_load_only_our_own_assets(keyed_url: str, page: str) -> None:
    response = httpx.get(keyed_url + page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "<script>" not in response.text  # no inline script: the policy allows none
    assert not EXTERNAL.search(response.text)
    assets = ASSET.findall(response.text)
    assert assets and all(asset.startswith("/") for asset in assets)
    for asset in assets:
        assert httpx.get(keyed_url + asset).status_code == 200, asset


def test_our_scripts_and_styles_name_no_external_host() -> None:
    for path in Path(STATIC).iterdir():
        if path.suffix == ".svg":  # only its XML namespace URI, which is never fetched
            continue
        assert not EXTERNAL.search(path.read_text(encoding="utf-8")), path.name


def test_api_and_schema_still_need_the_key(keyed_url: str) -> None:
    for path in ("/openapi.json", "/v1/models", "/metrics", "/qwen-plus/input_schema"):
        assert httpx.get(keyed_url + path).status_code == 401, path
    schema = httpx.get(keyed_url + "/openapi.json", headers={"authorization": f"Bearer {API_KEY}"})
    assert schema.status_code == 200
    body = schema.json()
    assert body["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "server.api_keys",
    }
    assert body["security"] == [{"bearer": []}]
    assert body["paths"]["/health"]["get"]["security"] == []
    assert body["info"]["version"] != "0.1.0"


def test_open_server_has_no_security_scheme(open_url: str) -> None:
    body = httpx.get(open_url + "/openapi.json").json()
    assert "securitySchemes" not in body.get("components", {})
    assert httpx.get(open_url + "/").status_code == 200


def test_session_cookie_needs_the_key_and_is_not_the_key(keyed_url: str) -> None:
    assert httpx.post(keyed_url + "/web/session").status_code == 401
    refused = httpx.post(keyed_url + "/web/session", headers={"authorization": "Bearer wrong"})
    assert refused.status_code == 401 and "set-cookie" not in refused.headers
    response = httpx.post(
        keyed_url + "/web/session", headers={"authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 204
    cookie = response.headers["set-cookie"]
    assert API_KEY not in cookie
    assert cookie.startswith(f"{COOKIE}={session_token(API_KEY)};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    closed = httpx.delete(
        keyed_url + "/web/session", headers={"authorization": f"Bearer {API_KEY}"}
    )
    assert "Max-Age=0" in closed.headers["set-cookie"]


def test_cookie_works_for_same_origin_playground_calls_only(
    keyed_url: str, emulator: DashScopeEmulator
) -> None:
    body = {"input": "hi"}
    invoke = keyed_url + "/qwen-plus/invoke"
    schema = keyed_url + "/qwen-plus/input_schema"
    assert httpx.post(invoke, json=body, headers={**_cookie(), **SAME_ORIGIN}).status_code == 200
    assert httpx.get(schema, headers={**_cookie(), **SAME_ORIGIN}).status_code == 200
    for site in ("same-site", "cross-site", "none"):  # another port of localhost, another site
        headers = {**_cookie(), "sec-fetch-site": site}
        assert httpx.post(invoke, json=body, headers=headers).status_code == 401, site
    # Without fetch metadata (plain http to a LAN host) only our own origin may write.
    own = {**_cookie(), "origin": keyed_url}
    assert httpx.post(invoke, json=body, headers=own).status_code == 200
    other = {**_cookie(), "origin": "http://evil.test"}
    assert httpx.post(invoke, json=body, headers=other).status_code == 401
    assert httpx.post(invoke, json=body, headers=_cookie()).status_code == 401  # no Origin
    assert httpx.get(schema, headers=_cookie()).status_code == 200  # a read
    # Never for the OpenAI API, the metrics or the schema; never with a wrong or stale cookie.
    for path in ("/v1/models", "/metrics", "/openapi.json"):
        assert httpx.get(keyed_url + path, headers={**_cookie(), **SAME_ORIGIN}).status_code == 401
    stale = {**_cookie("old-key"), **SAME_ORIGIN}
    assert httpx.post(invoke, json=body, headers=stale).status_code == 401
    # A cookie holding the key itself is no session.
    raw = {"cookie": f"{COOKIE}={API_KEY}", **SAME_ORIGIN}
    assert httpx.post(invoke, json=body, headers=raw).status_code == 401


def test_playground_without_session_goes_to_the_key_form(keyed_url: str) -> None:
    response = httpx.get(keyed_url + PLAYGROUND, headers={"sec-fetch-dest": "document"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/?next={PLAYGROUND}"
    opened = httpx.get(
        keyed_url + PLAYGROUND, headers={**_cookie(), "sec-fetch-site": "none"}
    )  # typed in the address bar
    assert opened.status_code == 200 and "<html" in opened.text.lower()
    bearer = httpx.get(keyed_url + PLAYGROUND, headers={"authorization": f"Bearer {API_KEY}"})
    assert bearer.status_code == 200


def test_model_names_cannot_shadow_the_pages() -> None:
    from langchain_chatchat.server.config import ConfigError, load_config

    for name in ("web", "docs", "favicon.ico"):
        with pytest.raises(ConfigError, match="reserved"):
            load_config({"models": [{"name": name, "provider": "qwen", "params": {}}]})
