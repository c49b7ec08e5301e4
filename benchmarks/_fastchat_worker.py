"""A FastChat model worker that relays to an OpenAI-compatible upstream, as Chatchat 0.2 did.

Run with the interpreter of an environment where `fschat` (0.2.36) is installed:

    python benchmarks/_fastchat_worker.py --upstream http://127.0.0.1:8001/v1 \
        --controller http://127.0.0.1:21001 --port 21002 --model-name fake

FastChat has no worker that forwards to a generic OpenAI API, so this mirrors Chatchat 0.2's
`ApiModelWorker`: a `BaseModelWorker` whose conversation template is a plain
"### role:" transcript, whose `generate_stream_gate` turns FastChat's prompt string back into
messages, calls the upstream with a (reused) httpx client and yields FastChat's
NUL-terminated JSON frames carrying the text so far. It registers with the controller and
serves FastChat's stock worker app.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import httpx
import uvicorn
from fastchat.conversation import Conversation, SeparatorStyle
from fastchat.serve import base_model_worker
from fastchat.serve.base_model_worker import BaseModelWorker, app


class RelayWorker(BaseModelWorker):
    def __init__(self, upstream: str, upstream_model: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.upstream = upstream.rstrip("/")
        self.upstream_model = upstream_model
        self.context_len = 8192
        self.client = httpx.Client(timeout=60)
        # Chatchat 0.2 restored the streams FastChat's logger redirects.
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    def make_conv_template(self, conv_template=None, model_path=None) -> Conversation:
        return Conversation(
            name=self.model_names[0],
            system_message="You are a helpful assistant.",
            messages=[],
            roles=["user", "assistant", "system"],
            sep="\n### ",
            stop_str="###",
            sep_style=SeparatorStyle.ADD_COLON_SINGLE,
        )

    def count_token(self, params):
        return {"count": len(str(params["prompt"])), "error_code": 0}

    def prompt_to_messages(self, prompt: str) -> list[dict]:
        result = []
        user, ai = self.conv.roles[0], self.conv.roles[1]
        for piece in prompt.split(self.conv.sep)[1:-1]:
            for role, name in (("user", user), ("assistant", ai)):
                if piece.startswith(name + ":") and (content := piece[len(name) + 1 :].strip()):
                    result.append({"role": role, "content": content})
        return result

    def generate_stream_gate(self, params):
        self.call_ct += 1
        try:
            payload = {
                "model": self.upstream_model,
                "messages": self.prompt_to_messages(params["prompt"]),
                "stream": True,
            }
            for key, name in (("temperature", "temperature"), ("top_p", "top_p")):
                if params.get(key) is not None:
                    payload[name] = params[key]
            text = ""
            with self.client.stream(
                "POST", f"{self.upstream}/chat/completions", json=payload
            ) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    for choice in chunk.get("choices") or []:
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if piece:
                            text += piece
                            yield self._frame({"error_code": 0, "text": text})
            yield self._frame({"error_code": 0, "text": text, "finish_reason": "stop"})
        except Exception as error:  # noqa: BLE001 - Chatchat 0.2 reported upstream failures in-band
            yield self._frame({"error_code": 500, "text": f"upstream error: {error}"})

    def generate_gate(self, params):
        last = b""
        for frame in self.generate_stream_gate(params):
            last = frame
        return json.loads(last[:-1].decode())

    @staticmethod
    def _frame(data: dict) -> bytes:
        return json.dumps(data, ensure_ascii=False).encode() + b"\0"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--upstream-model", default="fake-model")
    parser.add_argument("--controller", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-name", default="fake")
    parser.add_argument("--limit", type=int, default=1024, help="limit_worker_concurrency")
    args = parser.parse_args()
    address = f"http://127.0.0.1:{args.port}"
    worker = RelayWorker(
        upstream=args.upstream,
        upstream_model=args.upstream_model,
        controller_addr=args.controller,
        worker_addr=address,
        worker_id=uuid.uuid4().hex[:8],
        model_path="",
        model_names=[args.model_name],
        limit_worker_concurrency=args.limit,
    )
    base_model_worker.worker = worker
    worker.init_heart_beat()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
