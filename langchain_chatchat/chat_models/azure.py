"""ChatAzureOpenAI: chat deployments on Azure OpenAI."""

from __future__ import annotations

from typing import ClassVar

from langchain_chatchat.chat_models.base import ChatchatChatModel
from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.connections import AzureSettings
from langchain_chatchat.workers.azure import AzureOpenAIWorker
from langchain_chatchat.workers.openai_compatible import OpenAICompatibleWorker


class ChatAzureOpenAI(AzureSettings, ChatOpenAICompatible):
    """Azure OpenAI chat (key from AZURE_OPENAI_API_KEY, sent as `api-key`).

    Example:
        ```python
        from langchain_chatchat import ChatAzureOpenAI

        llm = ChatAzureOpenAI(model="gpt-4o", azure_endpoint="https://my-res.openai.azure.com")
        llm.invoke("hi")
        ```
    """

    worker_class: ClassVar[type[OpenAICompatibleWorker]] = AzureOpenAIWorker
    call_options: ClassVar[frozenset[str]] = ChatchatChatModel.call_options | {
        "reasoning_effort",
        "logit_bias",
    }
