"""The default chat model as a module-level runnable, for `langchain serve` in the project root.

pyproject.toml's `[tool.langserve]` points here; importing this module builds the model (see
`defaults.default_config`: `$CHATCHAT_CONFIG`, else the built-in default).
"""

from langchain_chatchat.server.defaults import default_chat_model

runnable = default_chat_model()
