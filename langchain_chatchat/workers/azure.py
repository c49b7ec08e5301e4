"""Azure OpenAI: OpenAI's wire format on a resource/deployment path with an api-version query.

Transport: httpx via the OpenAI-compatible worker (the `openai` SDK's AzureOpenAI speaks the
same protocol; httpx keeps the runtime dependencies lean).
"""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_chatchat.workers.content import MediaRules, pattern
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

DEFAULT_API_VERSION = "2024-10-21"


class _AzureClient(OpenAICompatibleClient):
    """`{endpoint}/openai/deployments/{deployment}` + `?api-version=`; `api-key` header, or an
    Entra ID (AAD) bearer token. Error codes from the Azure OpenAI reference: `content_filter`
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
        if base_url is None:
            if not (azure_endpoint and deployment):
                raise BadRequestError(
                    "Azure OpenAI needs azure_endpoint (AZURE_OPENAI_ENDPOINT) and a deployment name",
                    provider=self.provider,
                    param="azure_endpoint",
                )
            base_url = f"{azure_endpoint.rstrip('/')}/openai/deployments/{deployment}"
        self._ad_token = azure_ad_token
        self.api_version = api_version or DEFAULT_API_VERSION
        super().__init__(api_key=api_key, base_url=base_url, **kwargs)

    def auth_headers(self) -> dict[str, str]:
        if self._api_key:
            return {"api-key": self._api_key}
        return {"Authorization": f"Bearer {self._ad_token}"}

    def query_params(self) -> dict[str, str]:
        return {"api-version": self.api_version, **super().query_params()}


class AzureOpenAIWorker(_AzureClient, OpenAICompatibleWorker):
    """Chat on an Azure OpenAI deployment (the deployment, not `model`, picks the model).
    Streams may open with a `choices: []` chunk carrying prompt_filter_results."""

    media_rules: ClassVar[MediaRules] = MediaRules(
        # Azure OpenAI vision how-to: the OpenAI image parts and limits. Deployment names are
        # the operator's, so only names of the known text-only families are refused.
        text_models=pattern(r"^(gpt-35|gpt-3\.5|o1-mini|o3-mini)"),
        audio_models=pattern(r"audio"),
        example="gpt-4o",
    )


class AzureOpenAIEmbeddingWorker(_AzureClient, OpenAICompatibleEmbeddingWorker):
    """Embeddings on an Azure OpenAI embedding deployment (2048 inputs per request)."""

    default_batch_size: ClassVar[int] = 2048
