"""The LangServe playground sends an image: its page (LangServe's app, under our CSP) with the
"Attach image" control, in a real headless chromium, against vision models on the DashScope and
Zhipu (OpenAI-compatible) emulators, which name the image they decoded."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from langchain_chatchat.server import create_app
from langchain_chatchat.testing import BackgroundServer, DashScopeEmulator
from langchain_chatchat.testing.openai_compatible import OpenAICompatibleEmulator
from tests.server.conftest import qwen_params
from tests.vision.conftest import image_bytes, seen
from tests.web.conftest import API_KEY

MAX_BODY = 512 * 1024
MAX_IMAGE = (MAX_BODY - 64 * 1024) * 3 // 4
"""What the page lets through with MAX_BODY: the image's data URL must fit the body."""
RUNS = ("invoke", "batch", "stream", "stream_log", "stream_events")


@pytest.fixture(scope="module")
def zhipu() -> Iterator[OpenAICompatibleEmulator]:
    with OpenAICompatibleEmulator("zhipu") as emulator:
        yield emulator


def vision_config(
    dashscope: DashScopeEmulator, zhipu: OpenAICompatibleEmulator, api_keys: list[str]
) -> dict[str, Any]:
    glm = {"model": "glm-4v-plus", "api_key": zhipu.api_key, "base_url": zhipu.base_url}
    return {
        "server": {"api_keys": api_keys, "max_body_size": MAX_BODY},
        "models": [
            {
                "name": "qwen-vl-max",
                "provider": "qwen",
                "params": qwen_params(dashscope, "qwen-vl-max"),
            },
            {
                "name": "qwen-plus",
                "provider": "qwen",
                "params": qwen_params(dashscope, "qwen-plus"),
            },
            {"name": "glm-4v-plus", "provider": "zhipu", "params": {**glm, "max_retries": 0}},
            {
                "name": "text-embedding-v3",
                "provider": "qwen",
                "kind": "embeddings",
                "params": qwen_params(dashscope, "text-embedding-v3"),
            },
        ],
    }


@pytest.fixture(scope="module")
def server_url(
    dashscope_emulator_session: DashScopeEmulator, zhipu: OpenAICompatibleEmulator
) -> Iterator[str]:
    app = create_app(vision_config(dashscope_emulator_session, zhipu, []))
    with BackgroundServer(app) as server:
        yield server.url


@pytest.fixture(scope="module")
def keyed_server_url(
    dashscope_emulator_session: DashScopeEmulator, zhipu: OpenAICompatibleEmulator
) -> Iterator[str]:
    app = create_app(vision_config(dashscope_emulator_session, zhipu, [API_KEY]))
    with BackgroundServer(app) as server:
        yield server.url


def run_bodies(tab: Any) -> list[dict]:
    """Collects the JSON bodies the page posts to a model's run endpoints."""
    bodies: list[dict] = []

    def collect(request: Any) -> None:
        if request.method == "POST" and request.url.rsplit("/", 1)[-1] in RUNS:
            bodies.append(json.loads(request.post_data))

    tab.on("request", collect)
    return bodies


def open_playground(tab: Any, url: str) -> None:
    tab.goto(url)
    tab.get_by_role("button", name="Start").wait_for()


def attach(tab: Any, name: str, mime: str, data: bytes) -> None:
    tab.set_input_files(
        "#chatchat-image-input", files=[{"name": name, "mimeType": mime, "buffer": data}]
    )


def run(tab: Any, text: str) -> Any:
    """Write one human message in the app's form, start the run; the output box."""
    tab.locator(".control button.p-1").first.click()  # the app's "add message" (+) button
    tab.locator("textarea").first.fill(text)
    tab.get_by_role("button", name="Start").click()
    return tab.get_by_role("heading", name="Output").locator("xpath=following-sibling::div[1]")


def sent_image(body: dict) -> bytes:
    """The bytes of the image in the last message of a run's input."""
    *_, last = body["input"]
    image = next(part for part in last["content"] if part["type"] == "image_url")
    head, _, payload = image["image_url"]["url"].partition(",")
    assert head.startswith("data:image/") and head.endswith(";base64")
    return base64.b64decode(payload)


# ---- the page -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["qwen-vl-max", "text-embedding-v3"])
def test_the_page_runs_the_bundle_under_a_csp(page: Any, server_url: str, model: str) -> None:
    reply = httpx.get(f"{server_url}/{model}/playground/")
    policy = reply.headers["content-security-policy"]
    scripts = re.search(r"script-src ([^;]*)", policy).group(1).split()
    assert scripts[0] == "'self'" and "'unsafe-inline'" not in scripts
    assert [s for s in scripts if s.startswith("'sha256-")], "the schemas' inline script, by hash"
    assert "frame-ancestors 'none'" in policy and reply.headers["x-content-type-options"]
    chat = model != "text-embedding-v3"
    assert ("/web/static/playground-image.js" in reply.text) is chat
    bundle = re.search(rf'src="(/{model}/playground/assets/[^"]+\.js)"', reply.text).group(1)
    asset = httpx.get(server_url + bundle)  # LangServe's assets, served as before
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    assert "content-security-policy" not in asset.headers

    console: list[str] = []
    page.on("console", lambda message: message.type == "error" and console.append(message.text))
    open_playground(page, f"{server_url}/{model}/playground/")
    page.get_by_role("heading", name="Inputs").wait_for()
    assert page.get_by_role("button", name="Attach image").count() == int(chat)
    assert console == []  # a CSP violation is a console error


def test_index_html_is_the_same_page(server_url: str) -> None:
    page = httpx.get(f"{server_url}/qwen-vl-max/playground/index.html")
    assert "playground-image.js" in page.text and "content-security-policy" in page.headers


# ---- images through the app ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "name", "mime", "fmt"),
    [
        ("qwen-vl-max", "photo.png", "image/png", "PNG"),  # DashScope's multimodal endpoint
        ("glm-4v-plus", "photo.jpg", "image/jpeg", "JPEG"),  # an OpenAI-compatible provider
    ],
)
def test_an_attached_image_reaches_the_model_intact(
    page: Any, server_url: str, model: str, name: str, mime: str, fmt: str
) -> None:
    data = image_bytes(fmt, (64, 48))
    bodies = run_bodies(page)
    open_playground(page, f"{server_url}/{model}/playground/")
    page.get_by_role("button", name="Attach image").wait_for()
    attach(page, name, mime, data)
    preview = page.get_by_role("img", name=f"Attached image {name}")
    preview.wait_for()
    assert preview.get_attribute("src").startswith(f"data:{mime};base64,")
    output = run(page, "What is in this picture?")

    output.filter(has_text="What is in this picture?").wait_for()
    assert output.text_content().startswith(f"I see 1 image(s): {seen(data, fmt.lower())}.")
    (body,) = bodies
    assert body["input"][-1]["type"] == "human"
    assert body["input"][-1]["content"][0] == {"type": "text", "text": "What is in this picture?"}
    assert sent_image(body) == data
    assert page.get_by_role("status").text_content() == f"{name} sent with the last human message."


def test_a_too_large_or_non_image_file_shows_an_error_and_sends_nothing(
    page: Any, server_url: str
) -> None:
    bodies = run_bodies(page)
    open_playground(page, f"{server_url}/qwen-vl-max/playground/")
    too_large = image_bytes() + bytes(MAX_IMAGE + 10_000)  # a PNG by name; only its size counts
    attach(page, "huge.png", "image/png", too_large)
    alert = page.get_by_role("alert")
    alert.filter(has_text="huge.png").wait_for()
    assert re.fullmatch(
        r"huge\.png is \d+ KiB; images up to 336 KiB can be sent\.", alert.text_content()
    )
    attach(page, "notes.txt", "text/plain", b"not an image")
    alert.filter(has_text="notes.txt").wait_for()
    assert alert.text_content() == "notes.txt is not a PNG, JPEG, WebP or GIF image."
    assert page.locator("#chatchat-image figure").is_hidden()

    output = run(page, "hello")
    output.filter(has_text="You said: hello").wait_for()
    assert "image" not in output.text_content()
    assert bodies == [{"input": [{"content": "hello", "type": "human"}], "config": {}}]


def test_the_home_page_refuses_the_same_files(page: Any, server_url: str) -> None:
    page.goto(server_url + "/")
    page.locator("#model option").first.wait_for(state="attached")
    assert page.get_attribute("#image", "accept") == "image/png,image/jpeg,image/webp,image/gif"
    page.set_input_files(
        "#image", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"text"}]
    )
    error = page.locator(".message.error")
    error.wait_for()
    assert error.text_content() == "notes.txt is not a PNG, JPEG, WebP or GIF image."
    assert page.locator("#attachments img").count() == 0


def test_without_an_attachment_the_request_is_the_apps_own(page: Any, server_url: str) -> None:
    bodies = run_bodies(page)
    open_playground(page, f"{server_url}/qwen-plus/playground/")
    attach(page, "a.png", "image/png", image_bytes())
    page.get_by_role("button", name="Remove image").click()
    assert page.locator("#chatchat-image figure").is_hidden()
    output = run(page, "hello")
    output.filter(has_text="You said: hello").wait_for()
    assert bodies == [{"input": [{"content": "hello", "type": "human"}], "config": {}}]


def test_a_text_only_model_refuses_the_image_and_the_page_says_so(
    page: Any, server_url: str
) -> None:
    open_playground(page, f"{server_url}/qwen-plus/playground/")
    attach(page, "a.png", "image/png", image_bytes())
    page.get_by_role("img", name="Attached image a.png").wait_for()
    run(page, "What is in this picture?")
    alert = page.get_by_role("alert")
    alert.filter(has_text="refused").wait_for()
    assert "400: qwen model 'qwen-plus': this model does not accept image input" in (
        alert.text_content()
    )


def test_a_body_past_the_servers_limit_shows_its_413(page: Any, server_url: str) -> None:
    open_playground(page, f"{server_url}/qwen-vl-max/playground/")
    attach(page, "full.png", "image/png", image_bytes() + bytes(MAX_IMAGE - 1_000))
    page.get_by_role("img", name="Attached image full.png").wait_for()
    post(page, "/qwen-vl-max/invoke", {"input": "x" * 70_000})  # the image fits; with this, not
    alert = page.get_by_role("alert")
    alert.filter(has_text="413").wait_for()
    assert alert.text_content() == (
        "The server refused the request with the image. 413: The request body is larger than"
        f" the server's limit of {MAX_BODY} bytes."
    )


def test_with_api_keys_the_playground_sends_the_image_over_its_session(
    page: Any, keyed_server_url: str
) -> None:
    data = image_bytes("PNG", (40, 30), "blue")
    page.goto(keyed_server_url + "/qwen-vl-max/playground/")
    page.wait_for_url(re.compile(r"/\?next="))  # no session yet: the key form
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Enter")
    page.wait_for_url(keyed_server_url + "/qwen-vl-max/playground/")
    page.get_by_role("button", name="Start").wait_for()
    attach(page, "blue.png", "image/png", data)
    page.get_by_role("img", name="Attached image blue.png").wait_for()
    output = run(page, "Describe it")
    output.filter(has_text="You said: Describe it").wait_for()
    assert output.text_content().startswith(f"I see 1 image(s): {seen(data)}.")
    assert [cookie["httpOnly"] for cookie in page.context.cookies()] == [True]


# ---- which requests carry the image, and where ---------------------------------------------

TEXT = {"type": "text", "text": "hi"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"input": "hi"}, {"input": [{"type": "human", "content": [TEXT, "IMG"]}]}),
        pytest.param(
            {
                "input": [
                    {"type": "system", "content": "be brief"},
                    {"type": "human", "content": "hi"},
                ]
            },
            {
                "input": [
                    {"type": "system", "content": "be brief"},
                    {"type": "human", "content": [TEXT, "IMG"]},
                ]
            },
            id="dicts",
        ),
        pytest.param(
            {"input": [{"role": "user", "content": "a"}, {"role": "user", "content": [TEXT]}]},
            {
                "input": [
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": [TEXT, "IMG"]},
                ]
            },
            id="last-of-two",
        ),
        pytest.param(
            {"input": [["system", "be brief"], ["human", "hi"], "ok"]},
            {
                "input": [
                    ["system", "be brief"],
                    ["human", "hi"],
                    {"type": "human", "content": [{"type": "text", "text": "ok"}, "IMG"]},
                ]
            },
            id="tuples-and-bare-string",
        ),
        pytest.param(
            {"input": [["user", "hi"]], "config": {"tags": ["x"]}},
            {"input": [{"type": "human", "content": [TEXT, "IMG"]}], "config": {"tags": ["x"]}},
            id="tuple",
        ),
        pytest.param(
            {"input": [{"type": "system", "content": "be brief"}]},
            {
                "input": [
                    {"type": "system", "content": "be brief"},
                    {"type": "human", "content": ["IMG"]},
                ]
            },
            id="no-human-message",
        ),
        pytest.param(
            {"input": {"messages": [{"type": "human", "content": ""}]}},
            {"input": {"messages": [{"type": "human", "content": ["IMG"]}]}},
            id="prompt-value",
        ),
        pytest.param(
            {"input": {"text": "hi", "type": "StringPromptValue"}},
            {"input": [{"type": "human", "content": [TEXT, "IMG"]}]},
            id="string-prompt-value",
        ),
    ],
)
def test_the_image_goes_into_the_last_human_message(
    page: Any, server_url: str, body: dict, expected: dict
) -> None:
    data = image_bytes()
    seen_bodies = intercept_runs(page)
    open_playground(page, f"{server_url}/qwen-vl-max/playground/")
    attach(page, "a.png", "image/png", data)
    page.get_by_role("img", name="Attached image a.png").wait_for()
    for endpoint in ("invoke", "stream", "stream_log", "stream_events"):
        post(page, f"/qwen-vl-max/{endpoint}", body)
    post(page, "/qwen-vl-max/batch", {"inputs": [body["input"], body["input"]]})

    image = {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{base64.b64encode(data).decode()}"},
    }
    want = json.loads(json.dumps(expected).replace('"IMG"', json.dumps(image)))
    assert seen_bodies[:4] == [want] * 4
    assert seen_bodies[4] == {"inputs": [want["input"], want["input"]]}


def test_other_requests_go_out_untouched(page: Any, server_url: str) -> None:
    seen_bodies = intercept_runs(page)
    open_playground(page, f"{server_url}/qwen-vl-max/playground/")
    attach(page, "a.png", "image/png", image_bytes())
    page.get_by_role("img", name="Attached image a.png").wait_for()
    body = {"input": "hi"}
    post(page, "/qwen-plus/invoke", body)  # another model's route
    post(page, "/qwen-vl-max/input_schema", body)  # not a run
    post(page, "/v1/chat/completions", body)
    post(page, "http://localhost:1/qwen-vl-max/invoke", body)  # another origin
    page.evaluate("fetch('/qwen-vl-max/invoke', {method: 'POST', body: 'not json'})")
    assert seen_bodies == [body, body, body, "not json"]  # the other origin was never reached
    assert (
        page.get_by_role("status")
        .text_content()
        .endswith("will be sent with the last human message.")
    )


def intercept_runs(tab: Any) -> list[Any]:
    """Answers every same-origin POST itself, recording its body (the server never sees it)."""
    bodies: list[Any] = []

    def answer(route: Any) -> None:
        request = route.request
        if request.method != "POST" or "127.0.0.1" not in request.url:
            route.fallback()
            return
        try:
            bodies.append(json.loads(request.post_data))
        except ValueError:
            bodies.append(request.post_data)
        route.fulfill(status=200, content_type="application/json", body='{"output": "ok"}')

    tab.route("**/*", answer)
    return bodies


def post(tab: Any, url: str, body: dict) -> None:
    tab.evaluate(
        """async ([url, body]) => {
            try {
                await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},
                                  body: JSON.stringify(body)});
            } catch {}
        }""",
        [url, body],
    )
