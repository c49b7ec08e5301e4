"""Wire-faithful provider emulators for offline tests (importable by users of the package).

    from langchain_chatchat.testing import DashScopeEmulator, Fault, Reply

    with DashScopeEmulator() as emu:
        emu.enqueue(Reply(text="Hi!"), Fault.http(429, "Throttling.RateQuota", "Slow down"))
        dashscope.Generation.call(..., base_address=emu.base_url)

The pytest plugin (registered through the ``pytest11`` entry point) provides the
``dashscope_emulator`` fixture.
"""

from langchain_chatchat.testing.dashscope import (
    DEFAULT_MODELS,
    ChatModelSpec,
    DashScopeEmulator,
    EmbeddingModelSpec,
)
from langchain_chatchat.testing.gemini import (
    GEMINI_MODELS,
    GeminiChatSpec,
    GeminiEmbeddingSpec,
    GeminiEmulator,
    PromptBlocked,
)
from langchain_chatchat.testing.openai_compatible import PROFILES, OpenAICompatibleEmulator, Profile
from langchain_chatchat.testing.responder import Responder, count_tokens, split_tokens
from langchain_chatchat.testing.script import Fault, RecordedRequest, Reply, ToolCallReply
from langchain_chatchat.testing.server import BackgroundServer, EmulatorBase
from langchain_chatchat.testing.spark_embedding import SparkEmbeddingEmulator

__all__ = [
    "DEFAULT_MODELS",
    "BackgroundServer",
    "ChatModelSpec",
    "DashScopeEmulator",
    "EmulatorBase",
    "EmbeddingModelSpec",
    "Fault",
    "GEMINI_MODELS",
    "GeminiChatSpec",
    "GeminiEmbeddingSpec",
    "GeminiEmulator",
    "OpenAICompatibleEmulator",
    "PROFILES",
    "PromptBlocked",
    "Profile",
    "RecordedRequest",
    "Reply",
    "SparkEmbeddingEmulator",
    "Responder",
    "ToolCallReply",
    "count_tokens",
    "split_tokens",
]
