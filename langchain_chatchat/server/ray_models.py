"""The ingress's view of a model that runs as its own Ray Serve deployment.

`ChatRayDeployment` and `RayDeploymentEmbeddings` are what the ingress's registry holds for an
entry with a `ray:` section (provider `ray_deployment`, registered by server/ray.py): every
call goes through a Serve `DeploymentHandle` to a replica that built the real model itself (see
`ModelDeployment`). What crosses the hop is kept small and typed:

- a replica's typed error comes back as the same `ChatchatError` (status, code, Retry-After);
- a replica that died, or cannot be reached, is an `UpstreamUnavailableError` (retryable), and
  the call is sent again — Serve routes it to a live replica — as long as nothing was streamed;
- a stream arrives as lists of chunks (the replica batches what is ready, see
  `ModelDeployment.stream`), so a small-chunk stream costs one Ray item per batch, not per token;
- closing the stream (a client that left) cancels the replica's call, which closes its upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, ClassVar, TypeVar

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from langchain_chatchat.server.access_log import current_request_id
from langchain_chatchat.workers.errors import (
    ChatchatError,
    RateLimitError,
    UpstreamUnavailableError,
)
from langchain_chatchat.workers.types import EmbeddingResult, Usage

PROVIDER = "ray"
_RETRY_PAUSE = 0.05
T = TypeVar("T")


class _DeploymentClient(BaseModel):
    """A handle to one model deployment of the running Serve application, made on first use."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    deployment: str
    """The Serve deployment's name (`model:<entry name>`)."""
    app_name: str | None = None
    """The Serve application (default: the one this ingress replica belongs to)."""
    attempts: int = Field(default=3, ge=1)
    """Tries of a call whose replica died before answering (Serve picks a live one)."""

    _handle: Any = PrivateAttr(default=None)

    def handle(self, method: str, *, stream: bool = False) -> Any:
        if self._handle is None:
            from ray import serve

            app = self.app_name or serve.get_replica_context().app_name
            self._handle = serve.get_deployment_handle(self.deployment, app_name=app)
        return getattr(self._handle.options(stream=stream), method)

    async def call(self, method: str, *args: Any) -> Any:
        """`method(*args)` on a replica, again on another while replicas die before answering."""

        async def answer() -> Any:
            return await self.handle(method).remote(*args)

        return await self._while_replicas_die(answer)

    async def stream_batches(self, method: str, *args: Any) -> AsyncIterator[list[Any]]:
        """The replica's batches; retried like `call` until the first batch has arrived."""

        async def opened() -> tuple[Any, list[list[Any]]]:
            response = self.handle(method, stream=True).remote(*args)
            try:
                return response, [await anext(response)]
            except StopAsyncIteration:
                return response, []
            except asyncio.CancelledError:
                response.cancel()
                raise

        response, head = await self._while_replicas_die(opened)
        if not head:
            return
        first = head[0]
        finished = False
        try:
            yield first
            while True:
                try:
                    batch = await anext(response)
                except StopAsyncIteration:
                    break
                except Exception as error:
                    raise typed_error(error, self.deployment) from None
                yield batch
            finished = True
        finally:
            if not finished:
                response.cancel()  # the client left: stop the replica's upstream call too

    async def _while_replicas_die(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()`, again (at most `attempts` times in all) while its replica died before
        answering; any other failure is raised at once as a typed error."""
        attempts = 0
        while True:
            try:
                return await attempt()
            except Exception as error:
                typed = typed_error(error, self.deployment)
                attempts += 1
                if not _replica_lost(typed) or attempts == self.attempts:
                    raise typed from None
            await asyncio.sleep(_RETRY_PAUSE * attempts)


def typed_error(error: BaseException, deployment: str) -> ChatchatError:
    """What a Ray / Serve failure means to the pool and the client."""
    from ray import exceptions as ray_errors
    from ray.serve import exceptions as serve_errors

    if isinstance(error, ChatchatError):
        return error
    if isinstance(error, ray_errors.RayTaskError):
        cause = error.cause
        if isinstance(cause, ChatchatError):
            return cause
        if isinstance(cause, (ray_errors.RayActorError, ray_errors.ActorUnavailableError)):
            return typed_error(cause, deployment)
    if isinstance(error, serve_errors.BackPressureError):
        return RateLimitError(
            f"Every replica of {deployment} is at capacity; retry shortly.",
            provider=PROVIDER,
            code="model_at_capacity",
            retry_after=1.0,
        )
    if isinstance(
        error,
        (
            ray_errors.RayActorError,
            ray_errors.ActorUnavailableError,
            serve_errors.RayServeException,
        ),
    ):
        lost = UpstreamUnavailableError(
            f"a replica of {deployment} was lost ({type(error).__name__})", provider=PROVIDER
        )
        lost.code = "replica_lost"
        return lost
    return UpstreamUnavailableError(
        f"the call to {deployment} failed ({type(error).__name__})", provider=PROVIDER
    )


def _replica_lost(error: ChatchatError) -> bool:
    return error.provider == PROVIDER and error.code == "replica_lost"


class ChatRayDeployment(_DeploymentClient, BaseChatModel):
    """A chat model served by a Ray Serve deployment; tools are bound by the replica's model."""

    bound_tools: list[dict[str, Any]] | None = None
    tool_options: dict[str, Any] = Field(default_factory=dict)

    provider: ClassVar[str] = PROVIDER
    call_options: ClassVar[frozenset[str] | None] = None
    """Checked by the replica's own model, which alone knows its provider's options."""

    @property
    def _llm_type(self) -> str:
        return "chatchat-ray-deployment"

    def bind_tools(self, tools: Sequence[Any], **options: Any) -> ChatRayDeployment:
        return self.model_copy(
            update={
                "bound_tools": [convert_to_openai_tool(tool) for tool in tools],
                "tool_options": options,
            }
        )

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "input": messages,
            "kwargs": kwargs if stop is None else {**kwargs, "stop": stop},
            "tools": self.bound_tools,
            "tool_options": self.tool_options,
            "request_id": current_request_id(),
        }

    # LangChain's own astream/ainvoke wrap these, so callbacks and astream_events see every
    # chunk exactly as with a model in this process.
    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for batch in self.stream_batches("stream", self._request(messages, stop, kwargs)):
            for chunk in batch:
                generation = ChatGenerationChunk(message=chunk)
                if run_manager is not None:
                    await run_manager.on_llm_new_token(chunk.text, chunk=generation)
                yield generation

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = await self.call("invoke", self._request(messages, stop, kwargs))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Synchronous callers (outside the server): one blocking call through the handle."""
        try:
            request = self._request(messages, stop, kwargs)
            message = self.handle("invoke").remote(request).result()
        except Exception as error:
            raise typed_error(error, self.deployment) from None
        return ChatResult(generations=[ChatGeneration(message=message)])


class RayDeploymentEmbeddings(_DeploymentClient, Embeddings):
    """Embeddings served by a Ray Serve deployment."""

    dimensions: int | None = None

    async def aembed_with_usage(self, texts: list[str]) -> EmbeddingResult:
        """Vectors and prompt tokens, as the replica's own model counted them."""
        vectors, tokens = await self.call("embed", texts, self.dimensions, current_request_id())
        return EmbeddingResult(vectors, Usage(input_tokens=tokens, total_tokens=tokens))

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return (await self.aembed_with_usage(texts)).vectors

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        try:
            vectors, _ = (
                self.handle("embed").remote(texts, self.dimensions, current_request_id()).result()
            )
        except Exception as error:
            raise typed_error(error, self.deployment) from None
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
