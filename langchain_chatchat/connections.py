"""Connection settings shared by a provider's chat-model and embeddings classes.

Both faces of an OpenAI-style provider take the same key, base URL and headers (and, for Azure,
the same endpoint, deployment and API version), read from the same environment variables. They
live here, beside neither face, so that neither imports the other.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, Field, SecretStr, model_validator

from langchain_chatchat.workers.azure import DEFAULT_API_VERSION
from langchain_chatchat.workers.endpoint import HTTPWorker


class OpenAIConnection(BaseModel):
    """Key, base URL and headers of an OpenAI-style provider, and the worker built from them."""

    api_key: SecretStr | None = None
    """Defaults to the provider's usual environment variable (`worker_class.endpoint.api_key_env`)."""
    base_url: str | None = None
    """The provider's OpenAI root, e.g. `http://localhost:8000/v1`; defaults to its env var / URL."""
    default_headers: dict[str, str] | None = None
    """Extra headers sent with every request (gateways, tenant ids, Qianfan's appid, ...)."""

    worker_class: ClassVar[type[HTTPWorker]]

    if TYPE_CHECKING:  # declared by the chat-model / embeddings class this is mixed into
        provider: ClassVar[str]
        timeout: float | None
        max_retries: int

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "provider" not in cls.__dict__:  # presets take their name from their worker
            cls.provider = cls.worker_class.provider

    @model_validator(mode="before")
    @classmethod
    def _credentials_from_env(cls, values: Any) -> Any:
        """`api_key` / `base_url` from the provider's environment variables when not given;
        `<provider>_api_key=` is accepted as an alias of `api_key`."""
        if not isinstance(values, dict):
            return values
        endpoint, values = cls.worker_class.endpoint, dict(values)
        alias = f"{endpoint.provider}_api_key"
        if alias in values:
            values.setdefault("api_key", values.pop(alias))
        if values.get("api_key") is None and endpoint.api_key_env:
            values["api_key"] = os.environ.get(endpoint.api_key_env) or None
        if not values.get("base_url"):
            from_env = os.environ.get(endpoint.base_url_env) if endpoint.base_url_env else None
            values["base_url"] = from_env or endpoint.default_base_url
        return values

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": self.worker_class.endpoint.api_key_env or "OPENAI_API_KEY"}

    def _worker_kwargs(self) -> dict[str, Any]:
        """Provider-specific worker arguments (Azure's deployment, MiniMax's group id, ...)."""
        return {}

    def _build_worker(self) -> Any:
        return self.worker_class(
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            base_url=self.base_url,
            default_headers=self.default_headers,
            timeout=self.timeout,
            max_retries=self.max_retries,
            **self._worker_kwargs(),
        )


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
    """A dated version (`2024-10-21`) on the deployments path, or "v1" for the v1 GA path."""
    azure_ad_token: SecretStr | None = Field(
        default_factory=secret_from_env("AZURE_OPENAI_AD_TOKEN", default=None)
    )
    """An Entra ID token, used instead of the api-key header."""

    if TYPE_CHECKING:  # declared by the chat-model / embeddings class this is mixed into
        model: str

    @model_validator(mode="before")
    @classmethod
    def _model_from_deployment(cls, values: Any) -> Any:
        """As in langchain-openai's Azure classes, `model` may be left out: it defaults to the
        deployment (which is what picks the model on Azure)."""
        if isinstance(values, dict) and not (values.get("model") or values.get("model_name")):
            deployment = values.get("azure_deployment")
            if deployment:
                values = {**values, "model": deployment}
        return values

    def _worker_kwargs(self) -> dict[str, Any]:
        return {
            "azure_endpoint": self.azure_endpoint,
            "deployment": self.azure_deployment or self.model,
            "api_version": self.api_version,
            "azure_ad_token": self.azure_ad_token.get_secret_value()
            if self.azure_ad_token
            else None,
        }
