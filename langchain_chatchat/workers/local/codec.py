"""Chat templates and tokenization, over whichever tokenizer an engine brings.

The worker renders a conversation, encodes it and decodes the reply through a `Codec`, so the
transformers engine (a Hugging Face tokenizer) and the llama.cpp engine (the GGUF's own
vocabulary) share every other line of the request path. Both render Jinja chat templates with
transformers' renderer, so a template behaves the same on either engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, cast

from transformers import PreTrainedTokenizerBase
from transformers.utils.chat_template_utils import render_jinja_template


class Codec(Protocol):
    def template(self, override: str | None, tools: list[dict[str, Any]] | None) -> str:
        """The chat template to use; ValueError when the model has none."""
        ...

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, template: str
    ) -> str:
        """The prompt text, generation prompt included; jinja2.TemplateError on a bad chat."""
        ...

    def encode(self, text: str) -> list[int]:
        """Token ids of prompt text in which special-token markup is parsed as such."""
        ...

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, special tokens left out."""
        ...


class HFCodec:
    """A Hugging Face tokenizer as a codec."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def template(self, override: str | None, tools: list[dict[str, Any]] | None) -> str:
        return self.tokenizer.get_chat_template(override, tools)

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, template: str
    ) -> str:
        rendered = self.tokenizer.apply_chat_template(
            messages,
            tools=_tool_schemas(tools),
            chat_template=template,
            add_generation_prompt=True,
            tokenize=False,
        )
        if not isinstance(rendered, str):  # one conversation, untokenized: always its text
            raise TypeError(f"apply_chat_template returned {type(rendered).__name__}, not str")
        return rendered

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if not isinstance(text, str):  # one sequence of ids: always one string
            raise TypeError(f"decode returned {type(text).__name__}, not str")
        return text


class LlamaCodec:
    """A GGUF vocabulary (through llama-cpp-python) and its embedded chat template as a codec."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self._special = {
            "bos_token": self._piece(llama.token_bos()),
            "eos_token": self._piece(llama.token_eos()),
        }

    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llama.detokenize([token], special=True).decode("utf-8", errors="replace")

    def template(self, override: str | None, tools: list[dict[str, Any]] | None) -> str:
        template = override or self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError("the GGUF file has no tokenizer.chat_template")
        return template

    def render(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, template: str
    ) -> str:
        # transformers annotates `-> str`, but it returns (texts, generation indices).
        rendered, _ = cast(
            "tuple[list[str], list[Any]]",
            render_jinja_template(
                conversations=[messages],
                tools=_tool_schemas(tools),
                chat_template=template,
                add_generation_prompt=True,
                bos_token=self._special["bos_token"],
                eos_token=self._special["eos_token"],
            ),
        )
        return rendered[0]

    def encode(self, text: str) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def decode(self, ids: list[int]) -> str:
        return self.llama.detokenize(ids, special=False).decode("utf-8", errors="replace")


def _tool_schemas(
    tools: list[dict[str, Any]] | None,
) -> list[dict[Any, Any] | Callable[..., Any]] | None:
    """`tools` as transformers types it: an invariant list that may also hold functions."""
    return cast("list[dict[Any, Any] | Callable[..., Any]] | None", tools)
