"""Azure OpenAI: OpenAI's wire format on a resource/deployment path with an api-version query.

Transport: httpx via the OpenAI-compatible worker (the `openai` SDK's AzureOpenAI speaks the
same protocol; httpx keeps the runtime dependencies lean).
"""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    NotFoundError,
)
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleClient,
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
)
from langchain_chatchat.workers.types import ChatRequest, EmbeddingRequest

DEFAULT_API_VERSION = "2024-10-21"
V1_API_VERSION = "v1"
"""Selects Azure's v1 GA API: `{endpoint}/openai/v1/...`, no api-version query, the deployment
named in the body's `model` (learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle,
"API evolution": the v1 API needs no api-version)."""


class _AzureClient(OpenAICompatibleClient):
    """`{endpoint}/openai/deployments/{deployment}` + `?api-version=` (dated versions), or
    `{endpoint}/openai/v1` with the deployment as `model` (`api_version="v1"`, or an endpoint
    that already ends in /openai/v1); `api-key` header, or an Entra ID (AAD) bearer token. Error codes from the Azure OpenAI reference: `content_filter`
    (innererror ResponsibleAIPolicyViolation), `DeploymentNotFound`, `context_length_exceeded`,
    and HTTP statuses as codes ("401", "429" with Retry-After / retry-after-ms)."""

    provider: ClassVar[str] = "azure"
    api_key_env: ClassVar[str] = "AZURE_OPENAI_API_KEY"
    base_url_env: ClassVar[str | None] = None
    error_codes: ClassVar = {
        "content_filter": ContentFilterError,
        "ResponsibleAIPolicyViolation": ContentFilterError,
        "DeploymentNotFound": NotFoundError,
        "context_length_exceeded": ContextLengthError,
    }

    def __init__(
        self,
        *,
        api_key: str | None = None,
        azure_endpoint: str | None = None,
        deployment: str | None = None,
        api_version: str | None = None,
        azure_ad_token: str | None = None,
        base_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not (api_key or azure_ad_token):
            raise AuthenticationError(
                "no Azure OpenAI credentials: pass api_key=... (or set AZURE_OPENAI_API_KEY) or azure_ad_token=...",
                provider=self.provider,
            )
        endpoint = (azure_endpoint or "").rstrip("/")
        self.v1 = api_version == V1_API_VERSION or endpoint.endswith("/openai/v1")
        if base_url is None:
            if not (endpoint and deployment):
                raise BadRequestError(
                    "Azure OpenAI needs azure_endpoint (AZURE_OPENAI_ENDPOINT) and a deployment name",
                    provider=self.provider,
                    param="azure_endpoint",
                )
            if self.v1:
                base_url = endpoint if endpoint.endswith("/openai/v1") else f"{endpoint}/openai/v1"
            else:
                base_url = f"{endpoint}/openai/deployments/{deployment}"
        self.deployment = deployment
        self._ad_token = azure_ad_token
        self.api_version = api_version or DEFAULT_API_VERSION
        super().__init__(api_key=api_key, base_url=base_url, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        if self._api_key:
            return {"api-key": self._api_key}
        return {"Authorization": f"Bearer {self._ad_token}"}

    def query_params(self) -> dict[str, str]:
        if self.v1:
            return super().query_params()
        return {"api-version": self.api_version, **super().query_params()}

    def deployment_model(self, model: str) -> str:
        """The body's `model`: on the v1 path it names the deployment."""
        return self.deployment or model if self.v1 else model


class AzureOpenAIWorker(_AzureClient, OpenAICompatibleWorker):
    """Chat on an Azure OpenAI deployment (the deployment, not `model`, picks the model; `model`
    names the model for the reasoning-model rules). Streams may open with a `choices: []` chunk
    carrying prompt_filter_results."""

    def adjust_payload(self, payload: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
        payload["model"] = self.deployment_model(request.model)
        return payload


class AzureOpenAIEmbeddingWorker(_AzureClient, OpenAICompatibleEmbeddingWorker):
    """Embeddings on an Azure OpenAI embedding deployment (2048 inputs per request)."""

    default_batch_size: ClassVar[int] = 2048

    def embedding_payload(self, request: EmbeddingRequest) -> dict[str, Any]:
        payload = super().embedding_payload(request)
        payload["model"] = self.deployment_model(request.model)
        return payload
