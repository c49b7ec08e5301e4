"""Azure OpenAI: OpenAI's wire format on a resource/deployment path with an api-version query.

Transport: HTTPTransport via the OpenAI-compatible worker (the `openai` SDK's AzureOpenAI speaks the
same protocol; httpx keeps the runtime dependencies lean).
"""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_chatchat.workers.endpoint import Auth, Endpoint
from langchain_chatchat.workers.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilterError,
    ContextLengthError,
    ErrorTable,
    NotFoundError,
)
from langchain_chatchat.workers.openai_compatible import (
    OpenAICompatibleEmbeddingWorker,
    OpenAICompatibleWorker,
)
from langchain_chatchat.workers.types import ChatRequest, EmbeddingRequest

DEFAULT_API_VERSION = "2024-10-21"
V1_API_VERSION = "v1"
"""Selects Azure's v1 GA API: `{endpoint}/openai/v1/...`, no api-version query, the deployment
named in the body's `model` (learn.microsoft.com/azure/ai-foundry/openai/api-version-lifecycle,
"API evolution": the v1 API needs no api-version)."""


class AzureAuth(Auth):
    """`api-key` header, or an Entra ID (AAD) bearer token; `?api-version=`; requests go to
    `{azure_endpoint}/openai/deployments/{deployment}` unless a base_url is given — or, with
    `api_version="v1"` (or an endpoint ending in /openai/v1), to `{azure_endpoint}/openai/v1`
    with no api-version and the deployment as the body's `model`."""

    def __init__(
        self,
        api_key: str | None,
        *,
        azure_endpoint: str | None = None,
        deployment: str | None = None,
        api_version: str | None = None,
        azure_ad_token: str | None = None,
    ) -> None:
        if not (api_key or azure_ad_token):
            raise AuthenticationError(
                "no Azure OpenAI credentials: pass api_key=... (or set AZURE_OPENAI_API_KEY) or azure_ad_token=...",
                provider="azure",
            )
        super().__init__(api_key)
        self._ad_token = azure_ad_token
        endpoint = (azure_endpoint or "").rstrip("/")
        self.v1 = api_version == V1_API_VERSION or endpoint.endswith("/openai/v1")
        self.deployment = deployment
        if self.v1:
            v1_root = endpoint if endpoint.endswith("/openai/v1") else f"{endpoint}/openai/v1"
            self._deployment_url = v1_root if endpoint and deployment else None
        else:
            self._deployment_url = (
                f"{endpoint}/openai/deployments/{deployment}" if endpoint and deployment else None
            )
        self.api_version = api_version or DEFAULT_API_VERSION

    def base_url(self, configured: str | None) -> str:
        url = configured or self._deployment_url
        if url is None:
            raise BadRequestError(
                "Azure OpenAI needs azure_endpoint (AZURE_OPENAI_ENDPOINT) and a deployment name",
                provider="azure",
                param="azure_endpoint",
            )
        return url

    def headers(self) -> dict[str, str]:
        if self.api_key:
            return {"api-key": self.api_key}
        return {"Authorization": f"Bearer {self._ad_token}"}

    def params(self) -> dict[str, str]:
        return {} if self.v1 else {"api-version": self.api_version}

    def body_model(self, model: str) -> str:
        """The body's `model`: on the v1 path it names the deployment."""
        return (self.deployment or model) if self.v1 else model


AZURE = Endpoint(
    provider="azure",
    api_key_env="AZURE_OPENAI_API_KEY",
    api_key_required=False,  # an Entra ID token may stand in for the key (checked by AzureAuth)
    auth=AzureAuth,
    # Error codes from the Azure OpenAI reference: `content_filter` (innererror
    # ResponsibleAIPolicyViolation), `DeploymentNotFound`, `context_length_exceeded`, and HTTP
    # statuses as codes ("401", "429" with Retry-After / retry-after-ms).
    errors=ErrorTable(
        {
            "content_filter": ContentFilterError,
            "ResponsibleAIPolicyViolation": ContentFilterError,
            "DeploymentNotFound": NotFoundError,
            "context_length_exceeded": ContextLengthError,
        }
    ),
)


class AzureOpenAIWorker(OpenAICompatibleWorker):
    """Chat on an Azure OpenAI deployment (the deployment, not `model`, picks the model; `model`
    names the model for the reasoning-model rules). Streams may open with a `choices: []` chunk
    carrying prompt_filter_results."""

    endpoint: ClassVar[Endpoint] = AZURE

    def adjust_payload(self, payload: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
        payload["model"] = self.auth.body_model(request.model)  # type: ignore[attr-defined]
        return payload


class AzureOpenAIEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """Embeddings on an Azure OpenAI embedding deployment (2048 inputs per request)."""

    endpoint: ClassVar[Endpoint] = AZURE
    default_batch_size: ClassVar[int] = 2048

    def embedding_payload(self, request: EmbeddingRequest) -> dict[str, Any]:
        payload = super().embedding_payload(request)
        payload["model"] = self.auth.body_model(request.model)  # type: ignore[attr-defined]
        return payload
