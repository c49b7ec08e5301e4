"""The pages in a real headless browser (the `page` fixture: playwright driving the system's
chromium). Set CHATCHAT_SCREENSHOTS=<dir> to keep a screenshot of each page.
"""

from __future__ import annotations

import json
import re

from langchain_chatchat.testing import DashScopeEmulator, Reply, ToolCallReply
from tests.web.conftest import API_KEY

# A 1x1 PNG.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000001010100183dd8a60000000049454e44ae426082"
)


def chat_bodies(tab: object) -> list[dict]:
    """Collects the JSON bodies the page posts to /v1/chat/completions."""
    bodies: list[dict] = []
    tab.on(
        "request",
        lambda request: (
            bodies.append(json.loads(request.post_data))
            if request.url.endswith("/v1/chat/completions")
            else None
        ),
    )
    return bodies


def send(tab: object, text: str) -> None:
    tab.fill("#prompt", text)
    tab.press("#prompt", "Enter")


def wait_for_answer(tab: object, index: int = -1) -> object:
    answer = tab.locator(".message.assistant").nth(index)
    answer.locator(".meta", has_text="total").wait_for()
    return answer


def test_chat_streams_the_answer_with_reasoning_and_usage(
    page: object, open_url: str, emulator: DashScopeEmulator
) -> None:
    answer = "The capital of France is Paris, a city on the Seine."
    emulator.enqueue(Reply(text=answer, reasoning="France is a country.", chunk_delay=0.1))
    bodies = chat_bodies(page)
    page.goto(open_url + "/")
    page.locator("#model option", has_text="qwen-plus").wait_for(state="attached")
    page.select_option("#model", "qwen-plus")
    assert page.get_attribute("#playground", "href") == "/qwen-plus/playground/"
    send(page, "What is the capital of France?")

    content = page.locator(".message.assistant .content")
    content.filter(has_text=re.compile(".")).wait_for()
    partial = content.text_content()
    assert answer.startswith(partial) and partial != answer  # it arrives in pieces
    bubble = wait_for_answer(page)
    assert content.text_content() == answer
    assert bubble.locator(".reasoning").text_content().endswith("France is a country.")
    meta = bubble.locator(".meta").text_content()
    assert re.search(r"qwen-plus · \d+ prompt \+ \d+ completion tokens · first token \d+ ms", meta)
    assert bodies[0]["stream"] is True and bodies[0]["stream_options"] == {"include_usage": True}
    assert bodies[0]["messages"] == [{"role": "user", "content": "What is the capital of France?"}]


def test_tool_calls_run_in_the_page_and_the_answer_follows(
    page: object, open_url: str, emulator: DashScopeEmulator
) -> None:
    emulator.enqueue(
        Reply(tool_calls=[ToolCallReply("get_current_time", {}, id="call_1")]),
        Reply(text="It is morning."),
    )
    bodies = chat_bodies(page)
    page.goto(open_url + "/")
    page.locator("#model option").first.wait_for(state="attached")
    page.select_option("#model", "qwen-plus")
    page.check("#tools")
    send(page, "What time is it?")
    wait_for_answer(page, 1)
    assert "get_current_time({})" in page.locator(".tool-call").text_content()
    assert page.locator(".message.tool").text_content().startswith("get_current_time → 20")
    assert page.locator(".message.assistant .content").nth(1).text_content() == "It is morning."
    assert bodies[0]["tools"][0]["function"]["name"] == "get_current_time"
    assistant, tool = bodies[1]["messages"][1:]
    assert assistant["tool_calls"][0]["id"] == "call_1"
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_1"


def test_an_attached_image_is_sent_as_an_image_url_part(
    page: object, open_url: str, emulator: DashScopeEmulator
) -> None:
    bodies = chat_bodies(page)
    page.goto(open_url + "/")
    page.locator("#model option").first.wait_for(state="attached")
    page.select_option("#model", "qwen-plus")
    page.set_input_files(
        "#image", files=[{"name": "a.png", "mimeType": "image/png", "buffer": PIXEL}]
    )
    page.locator("#attachments img").wait_for()
    send(page, "What is in this picture?")
    page.locator(".message.assistant .meta").wait_for()
    page.locator("#send").wait_for(state="visible")
    text, image = bodies[0]["messages"][0]["content"]
    assert text == {"type": "text", "text": "What is in this picture?"}
    assert image["type"] == "image_url"
    assert image["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert page.locator(".message.user img").count() == 1
    # Whatever the model answers (a vision model) or refuses (a text-only one), the page says so.
    reply = page.locator(".message.assistant").text_content()
    assert reply.strip() != "qwen-plus …"


def test_with_api_keys_the_page_asks_for_the_key_then_chats(
    page: object, keyed_url: str, emulator: DashScopeEmulator
) -> None:
    emulator.enqueue(Reply(text="Hi there."))
    page.goto(keyed_url + "/")
    page.fill("#api-key", "not-the-key")
    page.press("#api-key", "Enter")
    page.locator("#key", has_text="That key was refused").wait_for()
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Enter")
    page.locator("#model option", has_text="qwen-plus").wait_for(state="attached")
    assert page.locator("#key").is_hidden()
    page.select_option("#model", "qwen-plus")
    send(page, "hello")
    assert wait_for_answer(page).locator(".content").text_content() == "Hi there."
    assert API_KEY not in page.url

    # The playground opens with the session cookie, and its own calls are authorized.
    page.click("#playground")
    page.wait_for_url(keyed_url + "/qwen-plus/playground/")
    status = page.evaluate(
        """async () => (await fetch('/qwen-plus/invoke', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({input: 'hi'})})).status"""
    )
    assert status == 200
    cookies = page.context.cookies()
    assert [cookie["httpOnly"] for cookie in cookies] == [True]
    assert API_KEY not in cookies[0]["value"]


def test_a_playground_link_without_a_key_comes_back_after_the_key_form(
    page: object, keyed_url: str
) -> None:
    page.goto(keyed_url + "/qwen-plus/playground/")
    page.wait_for_url(re.compile(r"/\?next="))
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Enter")
    page.wait_for_url(keyed_url + "/qwen-plus/playground/")
    page.get_by_text("Playground").first.wait_for()


def test_swagger_ui_works_offline_with_the_key(page: object, keyed_url: str) -> None:
    page.goto(keyed_url + "/docs")
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Enter")
    operation = page.locator("#operations-openai-list_models_v1_models_get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    operation.locator(".live-responses-table .response-col_status", has_text="200").wait_for()
    page.get_by_role("button", name=re.compile("Authorize")).first.wait_for()


def test_redoc_works_offline_with_the_key(page: object, keyed_url: str) -> None:
    page.goto(keyed_url + "/redoc")
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Enter")
    page.locator("#redoc h1", has_text="langchain-chatchat").wait_for()
    page.get_by_text("/v1/chat/completions").first.wait_for(state="attached")
