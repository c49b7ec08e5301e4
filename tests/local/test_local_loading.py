"""Finding models: shipped packages, GGUF paths, the user cache directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_chatchat.workers.errors import NotFoundError
from langchain_chatchat.workers.local.cache import cache_dir
from langchain_chatchat.workers.local.loading import (
    MINILM,
    SMOLLM2,
    ModelSource,
    ShippedModel,
)


def test_cache_dir_respects_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("CHATCHAT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "langchain-chatchat"
    monkeypatch.setenv("CHATCHAT_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


def test_shipped_models_are_found_in_their_distributions() -> None:
    smol = ModelSource.resolve("smollm2-135m-instruct")
    assert smol.gguf_file and smol.gguf_file.endswith(".gguf")
    assert (Path(smol.location) / smol.gguf_file).is_file()
    minilm = ModelSource.resolve(MINILM.name)
    assert minilm.gguf_file is None and (Path(minilm.location) / "model.safetensors").is_file()


def test_missing_distribution_says_how_to_install() -> None:
    missing = ShippedModel("x", "no-such-distribution-chatchat", ".gguf", "pip install no-such")
    with pytest.raises(NotFoundError, match="pip install no-such"):
        missing.file()


def test_gguf_file_path_splits_into_directory_and_file(tmp_path) -> None:
    path = tmp_path / "model.Q4.gguf"
    path.write_bytes(b"")
    assert ModelSource.resolve(str(path)) == ModelSource(str(tmp_path.resolve()), "model.Q4.gguf")


def test_directories_and_hub_ids(tmp_path) -> None:
    assert ModelSource.resolve(str(tmp_path)) == ModelSource(str(tmp_path.resolve()))
    assert ModelSource.resolve("org/model", "m.gguf") == ModelSource("org/model", "m.gguf")
    assert SMOLLM2.name == "SmolLM2-135M-Instruct"


def test_unloadable_model_is_not_found(tmp_path) -> None:
    from langchain_chatchat.chat_models.local import ChatLocal

    with pytest.raises(NotFoundError, match="cannot load"):
        ChatLocal(model=str(tmp_path / "nothing-here"), max_retries=0).invoke("hi")
