"""LangServe routes at /<name> for every served model: the very dispatchers the OpenAI router
calls, so both protocols share each model's replicas, limits, health and fallbacks.

A dependency checks each body before LangServe reads it and answers 400 in OpenAI's shape for
what LangServe 0.3 would answer with a 500 (a non-UTF-8 body, JSON nested too deeply for its
parser, a `config` that is not an object, `/batch` inputs that are not a list or fail the
input schema) or would accept in silence: `kwargs` (LangServe passes none to the runnable) and
`configurable` keys the runnable does not declare, so a request can never reach a setting of
the server's. Starlette caches the body it reads, so LangServe parses the same bytes without a
second read. Config-hash routes (`/c/{hash}/...`) are off: no model here is configurable.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, FastAPI, Request
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.utils.pydantic import TypeBaseModel
from langserve import add_routes
from langserve.callbacks import AsyncEventAggregatorCallback
from pydantic import BaseModel, ValidationError

from langchain_chatchat.server.config import ServerSettings
from langchain_chatchat.server.openai.messages import refuse_local_media
from langchain_chatchat.server.registry import ModelRegistry
from langchain_chatchat.server.web.playground import add_playground_page
from langchain_chatchat.workers.errors import BadRequestError

_CHECKED_ENDPOINTS = ("invoke", "batch", "stream", "stream_log", "stream_events")


def add_langserve_routes(app: FastAPI, registry: ModelRegistry) -> None:
    """invoke, batch, stream, stream_log, stream_events and playground for each model.

    The playground's page is ours (`web.playground`: a CSP, and an image control for chat
    models); its assets are LangServe's. The page's body limit comes from `app.state.config`.
    """
    config = getattr(app.state, "config", None)
    max_body_size = (config.server if config else ServerSettings()).max_body_size
    for served in registry:
        runnable = served.runnable
        served_runnable = WithoutEventAggregator(runnable)
        path = f"/{served.name}"
        config_keys = ("configurable",) if runnable.config_specs else ()
        add_playground_page(
            app,
            served_runnable,
            path,
            config_keys=config_keys,
            images=served.kind == "chat",
            max_body_size=max_body_size,
        )
        add_routes(
            app,
            served_runnable,
            path=path,
            dependencies=[Depends(_body_checker(runnable))],
            config_keys=config_keys,
            disabled_endpoints=["config_hashes"],
        )


class WithoutEventAggregator(Runnable):
    """`runnable`, minus the event aggregator LangServe adds to every /invoke and /stream.

    LangServe returns the aggregated callback events only with `include_callback_events`,
    which these routes leave off; the aggregator alone would still make every call pay for
    LangChain's callback machinery (the dispatcher goes straight to the worker only when
    nothing observes a call). Any other handler — tracing, `stream_log`, `stream_events` —
    is kept, so those routes see every event as before.
    """

    def __init__(self, runnable: Runnable) -> None:
        self.bound = runnable
        self.name = runnable.name
        # LangServe asks for the input schema on every request; langchain-core builds a new
        # pydantic model each time. Without configurable fields the config cannot change it.
        self._input_schema = None if runnable.config_specs else runnable.get_input_schema()

    @property
    def InputType(self) -> Any:
        return self.bound.InputType

    @property
    def OutputType(self) -> Any:
        return self.bound.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        if self._input_schema is not None:
            return self._input_schema
        return self.bound.get_input_schema(config)

    def get_output_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        return self.bound.get_output_schema(config)

    @property
    def config_specs(self) -> Any:
        return self.bound.config_specs

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.bound.invoke(input, _unobserved(config), **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self.bound.ainvoke(input, _unobserved(config), **kwargs)

    def astream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.bound.astream(input, _unobserved(config), **kwargs)


def _unobserved(config: RunnableConfig | None) -> RunnableConfig | None:
    if not config:
        return config
    callbacks = config.get("callbacks")
    if not isinstance(callbacks, list) or not any(
        isinstance(handler, AsyncEventAggregatorCallback) for handler in callbacks
    ):
        return config
    kept = [h for h in callbacks if not isinstance(h, AsyncEventAggregatorCallback)]
    return {**config, "callbacks": kept}


def _body_checker(runnable: Runnable) -> Any:
    configurable_ids = frozenset(spec.id for spec in runnable.config_specs)
    input_schema = runnable.input_schema
    if not issubclass(input_schema, BaseModel):  # langchain-core builds pydantic v2 schemas
        raise TypeError(f"{runnable.name}'s input schema is not a pydantic v2 model")

    async def check_body(request: Request) -> None:
        endpoint = request.url.path.rsplit("/", 1)[-1]
        if request.method != "POST" or endpoint not in _CHECKED_ENDPOINTS:
            return
        try:
            body = json.loads(await request.body())
        except UnicodeDecodeError:
            raise BadRequestError("the request body is not UTF-8 JSON") from None
        except RecursionError:
            raise BadRequestError("the request body is nested too deeply") from None
        except ValueError:
            return  # LangServe reports invalid JSON itself, as a 4xx
        if not isinstance(body, dict):
            return
        refuse_local_media(body.get("input", body.get("inputs")), param="input")
        batch = endpoint == "batch"
        if kwargs := body.get("kwargs"):
            names = sorted(kwargs) if isinstance(kwargs, dict) else []
            raise BadRequestError(
                "LangServe routes take no call options ('kwargs'); bind them on the server or"
                " send them to /v1/chat/completions"
                + (f" (got: {', '.join(map(str, names))})" if names else ""),
                param="kwargs",
            )
        if "config" in body:
            config = body["config"]
            configs = config if batch and isinstance(config, list) else [config]
            for item in configs:
                _check_config(item, configurable_ids)
        if batch:
            inputs = body.get("inputs")
            if not isinstance(inputs, list):
                raise BadRequestError("'inputs' must be a list", param="inputs")
            for index, item in enumerate(inputs):
                try:
                    input_schema.model_validate(item)
                except ValidationError as error:
                    raise BadRequestError(
                        f"inputs[{index}] does not match the input schema: {error.errors()[0]['msg']}",
                        param=f"inputs[{index}]",
                    ) from None

    return check_body


_RUNTIME_KEYS = frozenset({"thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map"})
"""What a client-side LangGraph run puts in `configurable` (plus its `__pregel_*` keys) when a
served route is one of its steps, e.g. a RemoteRunnable tool: runtime context, never a setting.
They are let through only where LangServe drops `configurable` whole (a runnable without
configurable fields gets `config_keys=()`), so they never reach the runnable."""


def _is_runtime_key(key: str) -> bool:
    return key.startswith("__") or key in _RUNTIME_KEYS


def _check_config(config: Any, configurable_ids: frozenset[str]) -> None:
    """A config must be an object whose `configurable` names only the runnable's own fields, or
    — for a runnable without any, whose `configurable` LangServe drops — a LangGraph run's
    runtime context."""
    if not isinstance(config, dict):
        raise BadRequestError("'config' must be an object", param="config")
    configurable = config.get("configurable")
    if configurable is None:
        return
    if not isinstance(configurable, dict):
        raise BadRequestError(
            "'config.configurable' must be an object", param="config.configurable"
        )
    unknown = sorted(
        str(key)
        for key in configurable
        if key not in configurable_ids and (configurable_ids or not _is_runtime_key(str(key)))
    )
    if unknown:
        raise BadRequestError(
            f"Unrecognized configurable field(s): {', '.join(unknown)}; this model has"
            + (f" only {', '.join(sorted(configurable_ids))}" if configurable_ids else " none"),
            param=f"config.configurable.{unknown[0]}",
        )
