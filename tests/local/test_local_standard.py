"""langchain-tests standard suites against ChatLocal / LocalEmbeddings on tiny random models.

The tiny chat model uses the Hermes tool template, so tool calls are rendered, forced and
parsed for real; but a random model cannot decide to call a tool or fill a schema, and the
tests that need that are xfailed with that reason. The same suites run on SmolLM2 in
test_local_real.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests, EmbeddingsUnitTests

from langchain_chatchat.chat_models.local import ChatLocal
from langchain_chatchat.embeddings.local import LocalEmbeddings

from .tiny_models import HERMES_TEMPLATE

RANDOM_MODEL = (
    "a tiny random model cannot follow instructions: "
    "it never chooses to call a tool or fill a schema"
)


class _TinyChat:
    """Points the suites at the session's tiny model (properties cannot take fixtures)."""

    _path: str

    @pytest.fixture(autouse=True)
    def _tiny_model(self, tiny_chat_model: str) -> None:
        self._path = tiny_chat_model

    @property
    def chat_model_class(self) -> type[ChatLocal]:
        return ChatLocal

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": self._path, "chat_template": HERMES_TEMPLATE}

    @property
    def supports_model_override(self) -> bool:
        return False  # one ChatLocal serves the model it was built for


class TestChatLocalUnit(_TinyChat, ChatModelUnitTests):
    pass


NEEDS_A_SMART_MODEL = {
    "test_tool_calling",
    "test_tool_calling_async",
    "test_tool_calling_with_no_arguments",
    "test_tool_choice",
    "test_bind_runnables_as_tools",
    "test_unicode_tool_call_integration",
    "test_agent_loop",
    "test_structured_output",
    "test_structured_output_async",
    "test_structured_output_pydantic_2_v1",
    "test_structured_output_optional_param",
}


class TestChatLocalIntegration(_TinyChat, ChatModelIntegrationTests):
    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        return {
            **super().standard_chat_model_params,
            "max_tokens": 24,
        }  # random text: length adds nothing

    @pytest.fixture(autouse=True)
    def _random_model_limits(self, request: pytest.FixtureRequest) -> None:
        # greedy decoding makes these failures deterministic, so an unexpected pass is an error
        if request.node.originalname in NEEDS_A_SMART_MODEL:
            request.applymarker(pytest.mark.xfail(reason=RANDOM_MODEL, strict=True))


class _TinyEncoder:
    _path: str

    @pytest.fixture(autouse=True)
    def _tiny_model(self, tiny_encoder: str) -> None:
        self._path = tiny_encoder

    @property
    def embeddings_class(self) -> type[LocalEmbeddings]:
        return LocalEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": self._path}


class TestLocalEmbeddingsUnit(_TinyEncoder, EmbeddingsUnitTests):
    pass


class TestLocalEmbeddingsIntegration(_TinyEncoder, EmbeddingsIntegrationTests):
    pass
