"""ChatAzureOpenAI: chat deployments on Azure OpenAI."""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, Field, SecretStr

from langchain_chatchat.chat_models.openai_compatible import ChatOpenAICompatible
from langchain_chatchat.workers.azure import DEFAULT_API_VERSION, AzureOpenAIWorker


class AzureSettings(BaseModel):
    """Azure's own fields, shared by ChatAzureOpenAI and AzureOpenAIEmbeddings."""

    azure_endpoint: str | None = Field(
        default_factory=from_env("AZURE_OPENAI_ENDPOINT", default=None)
    )
    """`https://<resource>.openai.azure.com`."""
    azure_deployment: str | None = None
    """The deployment to call; defaults to `model`."""
    api_version: str = Field(
        default_factory=from_env("OPENAI_API_VERSION", default=DEFAULT_API_VERSION)
    )
    azure_ad_token: SecretStr | None = Field(
        default_factory=secret_from_env("AZURE_OPENAI_AD_TOKEN", default=None)
    )
    """An Entra ID token, used instead of the api-key header."""

    def _worker_kwargs(self) -> dict[str, Any]:
        return {
            "azure_endpoint": self.azure_endpoint,
            "deployment": self.azure_deployment or self.model,  # type: ignore[attr-defined]
            "api_version": self.api_version,
            "azure_ad_token": self.azure_ad_token.get_secret_value()
            if self.azure_ad_token
            else None,
        }


class ChatAzureOpenAI(AzureSettings, ChatOpenAICompatible):
    """Azure OpenAI chat (key from AZURE_OPENAI_API_KEY, sent as `api-key`).

    Example:
        ```python
        from langchain_chatchat import ChatAzureOpenAI

        llm = ChatAzureOpenAI(model="gpt-4o", azure_endpoint="https://my-res.openai.azure.com")
        llm.invoke("hi")
        ```
    """

    worker_class: ClassVar = AzureOpenAIWorker
