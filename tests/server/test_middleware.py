"""Middleware details that need their own app: CORS and an open (key-less) server."""

from __future__ import annotations

from fastapi.testclient import TestClient

from langchain_chatchat.server import create_app

QWEN = {"name": "qwen-plus", "provider": "qwen", "params": {"api_key": "k"}}


def test_cors_preflight_needs_no_key_and_exposes_the_request_id():
    app = create_app(
        {"server": {"api_keys": ["sk-1"], "cors_origins": ["https://ui.example"]}, "models": [QWEN]}
    )
    with TestClient(app) as client:
        preflight = client.options(
            "/v1/chat/completions",
            headers={
                "Origin": "https://ui.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://ui.example"
        listed = client.get(
            "/v1/models", headers={"Origin": "https://ui.example", "Authorization": "Bearer sk-1"}
        )
        assert listed.status_code == 200
        assert "x-request-id" in listed.headers["access-control-expose-headers"]
        other = client.options(
            "/v1/models",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in other.headers


def test_without_api_keys_every_route_is_open():
    with TestClient(create_app({"models": [QWEN]})) as client:
        assert client.get("/v1/models").json()["data"][0]["id"] == "qwen-plus"
        assert client.get("/qwen-plus/input_schema").status_code == 200
