"""The converted-weights cache: content keys, atomic entries, `chatchat cache list|prune`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langchain_chatchat.cli import app
from langchain_chatchat.workers.local import cache
from langchain_chatchat.workers.local.loading import ModelSource, _converted_gguf


@pytest.fixture
def cache_root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CHATCHAT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_key_is_the_content_not_the_path_or_time(tmp_path) -> None:
    first, second = tmp_path / "a.gguf", tmp_path / "copy" / "b.gguf"
    second.parent.mkdir()
    first.write_bytes(b"weights")
    second.write_bytes(b"weights")
    os.utime(second, (1, 1))
    assert cache.content_key(first) == cache.content_key(second)
    second.write_bytes(b"other weights")
    assert cache.content_key(first) != cache.content_key(second)


def _entry(root: Path, name: str, age_days: float, *, size: int = 1000) -> Path:
    entry = root / "models" / name
    entry.mkdir(parents=True)
    (entry / "model.safetensors").write_bytes(b"x" * size)
    cache.mark_used(entry)
    moment = time.time() - age_days * 86400
    os.utime(entry / ".last-used", (moment, moment))
    os.utime(entry, (moment, moment))
    return entry


def test_list_and_prune(cache_root: Path) -> None:
    _entry(cache_root, "old-0123", 40)
    _entry(cache_root, "new-4567", 1)
    _entry(cache_root, ".converting-abc", 0.5)  # a crashed conversion
    runner = CliRunner()
    listed = runner.invoke(app, ["cache", "list"])
    assert listed.exit_code == 0, listed.output
    assert "3 entries" in listed.output and "unfinished conversion" in listed.output
    pruned = runner.invoke(app, ["cache", "prune", "--older-than", "30"])
    assert pruned.exit_code == 0, pruned.output
    assert "removed old-0123" in pruned.output and "removed .converting-abc" in pruned.output
    assert [entry.name for entry in cache.entries()] == ["new-4567"]
    assert "removed new-4567" in runner.invoke(app, ["cache", "prune", "--all"]).output
    assert cache.entries() == []


def test_conversion_is_atomic_and_shared(cache_root: Path, tmp_path, monkeypatch, tiny_chat_model):
    """A crash mid-conversion leaves nothing; a copy of the same file elsewhere (another venv)
    reuses the entry. The GGUF reading is replaced by the tiny model: what is tested is the
    cache's bookkeeping, not transformers' GGUF reader."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = tmp_path / "venv1" / "model.Q4.gguf"
    copy = tmp_path / "venv2" / "model.Q4.gguf"
    for path in (gguf, copy):
        path.parent.mkdir()
        path.write_bytes(b"GGUF same bytes")
    real_model, real_tokenizer = AutoModelForCausalLM.from_pretrained, AutoTokenizer.from_pretrained
    conversions = []

    def fake_model(location, **kwargs):
        conversions.append(location)
        return real_model(tiny_chat_model)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(
        AutoTokenizer, "from_pretrained", lambda *a, **k: real_tokenizer(tiny_chat_model)
    )
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", crash)
    with pytest.raises(KeyboardInterrupt):
        _converted_gguf(ModelSource(str(gguf.parent), gguf.name))
    assert not list((cache_root / "models").iterdir()), "a crash leaves nothing behind"

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", fake_model)
    converted = _converted_gguf(ModelSource(str(gguf.parent), gguf.name))
    assert (converted / "config.json").is_file() and converted.name.startswith("model.Q4-")
    assert _converted_gguf(ModelSource(str(copy.parent), copy.name)) == converted
    assert len(conversions) == 1, "the second venv's copy reuses the entry"
