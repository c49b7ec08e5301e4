"""Azure OpenAI: OpenAI's wire format on a resource/deployment path with an api-version query.

Transport: httpx via the OpenAI-compatible worker (the `openai` SDK's AzureOpenAI speaks the
same protocol; httpx keeps the runtime dependencies lean).
"""

from __future__ import annotations

from typing import ClassVar

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

DEFAULT_API_VERSION = "2024-10-21"


class AzureAuth(Auth):
    """`api-key` header, or an Entra ID (AAD) bearer token; `?api-version=`; requests go to
    `{azure_endpoint}/openai/deployments/{deployment}` unless a base_url is given."""

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
        self._deployment_url = (
            f"{azure_endpoint.rstrip('/')}/openai/deployments/{deployment}"
            if azure_endpoint and deployment
            else None
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
        return {"api-version": self.api_version}


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
    """Chat on an Azure OpenAI deployment (the deployment, not `model`, picks the model).
    Streams may open with a `choices: []` chunk carrying prompt_filter_results."""

    endpoint: ClassVar[Endpoint] = AZURE


class AzureOpenAIEmbeddingWorker(OpenAICompatibleEmbeddingWorker):
    """Embeddings on an Azure OpenAI embedding deployment (2048 inputs per request)."""

    endpoint: ClassVar[Endpoint] = AZURE
    default_batch_size: ClassVar[int] = 2048
