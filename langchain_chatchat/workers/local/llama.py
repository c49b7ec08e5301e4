"""The llama.cpp engine: GGUF models run by llama.cpp, batched as parallel sequences.

`llama-cpp-python` (the optional `llama` extra) loads the model; generation uses llama.cpp's
public batch API on a context of our own with one sequence id per batch slot and a unified KV
cache, so concurrent requests decode together in one `llama_decode` call per step. Sampling is
the shared `TokenSampler` (see sampling.py), so both engines behave the same.

A finished sequence keeps its KV cells until they are needed: a new prompt takes the idle
sequence sharing its longest prefix (the chat template's system prompt, or a conversation's
earlier turns) and evaluates only the rest, as llama.cpp's own server does; a prefix that
another sequence holds (a running request's, say) is shared with it cell for cell. Idle cells are
given back whenever running requests need the room.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from langchain_chatchat.workers.errors import BadRequestError, NotFoundError, RateLimitError
from langchain_chatchat.workers.local.scheduler import BatchScheduler, shared_prefix

logger = logging.getLogger(__name__)

INSTALL = 'pip install "langchain-chatchat[llama]"'


def available() -> bool:
    """Whether llama-cpp-python can be imported here."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as error:
        raise BadRequestError(
            f"engine 'llama_cpp' needs llama-cpp-python; run `{INSTALL}`",
            provider="local",
            param="engine",
        ) from error
    return llama_cpp


def cpu_threads() -> int:
    """Cores this process may run on (containers and affinity limits included)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class LlamaFile:
    """A loaded GGUF model (weights memory-mapped once per process) and its vocabulary."""

    path: Path
    llama: Any
    """The `llama_cpp.Llama` holding the weights; used for its tokenizer and metadata."""

    @property
    def metadata(self) -> dict[str, str]:
        return self.llama.metadata

    @property
    def context_length(self) -> int:
        """The context the model was trained for."""
        return int(_llama_cpp().llama_model_n_ctx_train(self.llama.model))

    def eos_token_ids(self) -> frozenset[int]:
        llama_cpp = _llama_cpp()
        vocab = llama_cpp.llama_model_get_vocab(self.llama.model)
        ids = {int(self.llama.token_eos())}
        ids |= {
            token
            for token in range(int(llama_cpp.llama_vocab_n_tokens(vocab)))
            if llama_cpp.llama_vocab_is_eog(vocab, token)
        }
        return frozenset(ids - {-1})


_LOAD_LOCK = threading.Lock()


def load_gguf(path: Path, *, embedding: bool = False) -> LlamaFile:
    """Load (once per process) a GGUF file with llama.cpp.

    For generation the `Llama` object only holds weights and vocabulary (its own context stays
    small); engines create their own contexts. For embeddings its context is the one used.
    """
    with _LOAD_LOCK:
        return _load(path.resolve(), embedding)


@cache
def _load(path: Path, embedding: bool) -> LlamaFile:
    llama_cpp = _llama_cpp()
    if not path.is_file():
        raise NotFoundError(f"GGUF file {str(path)!r} does not exist", provider="local")
    threads = cpu_threads()
    try:
        llama = llama_cpp.Llama(
            str(path),
            n_ctx=0 if embedding else 64,  # 0: the model's trained context
            n_threads=threads,
            n_threads_batch=threads,
            embedding=embedding,
            verbose=False,
        )
    except ValueError as error:
        raise NotFoundError(
            f"llama.cpp cannot load {str(path)!r}: {error}", provider="local"
        ) from error
    return LlamaFile(path, llama)


class LlamaCppEngine(BatchScheduler):
    """Continuous batching on llama.cpp: each batch slot is one llama.cpp sequence id."""

    def __init__(
        self,
        gguf: LlamaFile,
        *,
        max_batch_size: int = 8,
        max_queue: int = 64,
        label: str = "local",
        kv_cells: int | None = None,
        prompt_cache: bool = True,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, max_queue=max_queue, label=label)
        llama_cpp = _llama_cpp()
        self._api = llama_cpp
        self.gguf = gguf
        threads = cpu_threads()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = kv_cells or gguf.context_length
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = max_batch_size
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = True  # sequences share one pool of cells; each may use it all
        params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(gguf.llama.model, params)
        if not self._ctx:
            raise RateLimitError(
                f"llama.cpp could not allocate a context of {params.n_ctx} cells for "
                f"{self.label!r}; lower max_batch_size or context_length",
                provider="local",
            )
        self._kv_cells = int(params.n_ctx)
        self._n_batch = int(params.n_batch)
        self._vocab = int(
            llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(gguf.llama.model))
        )
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self._n_batch, 0, 1)
        self._held: dict[int, list[int]] = {seq_id: [] for seq_id in range(max_batch_size)}
        """The tokens whose KV cells each sequence id holds, running or idle."""
        self._idle = list(range(max_batch_size))  # sequence ids not running, oldest first
        self._rows: list[int] = []  # the sequence id of each running row
        self.prompt_cache = prompt_cache
        self.start()

    def _free_slots(self) -> int:
        return len(self._idle)

    def _prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        starts = [self._claim(prompt) for prompt in prompts]
        if self.prompt_cache:
            starts = self._share_longer_prefixes(starts, prompts)
        try:
            logits = self._run_prompts(starts, prompts)
        except BaseException:
            for seq_id, _ in starts:
                self._forget(seq_id)
            self._idle += [seq_id for seq_id, _ in starts]
            raise
        self.reused_prompt_tokens += sum(start for _, start in starts)
        for (seq_id, _), prompt in zip(starts, prompts, strict=True):
            self._held[seq_id] = list(prompt)
            self._rows.append(seq_id)
        return logits

    def _claim(self, prompt: list[int]) -> tuple[int, int]:
        """The idle sequence id sharing the longest prefix with `prompt` (the oldest if none
        does), trimmed to that prefix, and the position its evaluation starts at."""
        best, best_shared = self._idle[0], 0
        for seq_id in self._idle if self.prompt_cache else ():
            shared = shared_prefix(self._held[seq_id], prompt)
            if shared > best_shared:
                best, best_shared = seq_id, shared
        self._idle.remove(best)
        self._api.llama_memory_seq_rm(self._memory, best, best_shared, -1)
        del self._held[best][best_shared:]
        return best, best_shared

    def _share_longer_prefixes(
        self, starts: list[tuple[int, int]], prompts: list[list[int]]
    ) -> list[tuple[int, int]]:
        """Let a new prompt whose longest cached prefix is held by another sequence (a running
        row, an idle sequence, or another newcomer's claim) use those cells:
        `llama_memory_seq_cp` adds its sequence id to them, so nothing is copied or evaluated
        again. Concurrent requests with one system prompt evaluate it once.

        The sources are sequences that do not change here (no newcomer takes cells from one
        that is itself given others), so every copy reads cells that stay as they were."""
        # what every other sequence's cells could give each newcomer, measured once
        offers = [
            {
                other: shared_prefix(held, prompt)
                for other, held in self._held.items()
                if other != seq_id
            }
            for (seq_id, _), prompt in zip(starts, prompts, strict=True)
        ]
        takers = {
            seq_id
            for (seq_id, start), offered in zip(starts, offers, strict=True)
            if max(offered.values(), default=0) > start
        }
        shared_starts = []
        for (seq_id, start), offered in zip(starts, offers, strict=True):
            if seq_id in takers:
                length, source = max(
                    ((n, c) for c, n in offered.items() if c not in takers), default=(0, -1)
                )
                if length > start:
                    self._api.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
                    self._api.llama_memory_seq_cp(self._memory, source, seq_id, 0, length)
                    self._held[seq_id] = self._held[source][:length]
                    start = length
            shared_starts.append((seq_id, start))
        return shared_starts

    def _forget(self, seq_id: int) -> None:
        self._api.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
        self._held[seq_id] = []

    def _run_prompts(self, starts: list[tuple[int, int]], prompts: list[list[int]]) -> torch.Tensor:
        """Decode the prompts from their start positions, packed into batches of at most
        n_batch tokens; each prompt's last logits."""
        entries = [
            (prompt[position], position, seq_id, position == len(prompt) - 1)
            for (seq_id, start), prompt in zip(starts, prompts, strict=True)
            for position in range(start, len(prompt))
        ]
        logits = []
        for start in range(0, len(entries), self._n_batch):
            chunk = entries[start : start + self._n_batch]
            self._submit(chunk)
            outputs = sum(1 for entry in chunk if entry[3])
            if outputs:
                logits.append(self._logits(outputs).copy())
        return torch.from_numpy(np.concatenate(logits))

    def _decode(self, tokens: list[int]) -> torch.Tensor:
        held = self._held
        try:
            self._submit(
                [
                    (token, len(held[seq_id]), seq_id, True)
                    for token, seq_id in zip(tokens, self._rows, strict=True)
                ]
            )
        except BaseException:
            for seq_id in self._rows:  # what the failed step left in the cache is unknown
                self._forget(seq_id)
            raise
        for token, seq_id in zip(tokens, self._rows, strict=True):
            held[seq_id].append(token)
        return torch.from_numpy(self._logits(len(tokens)))  # read before the next decode

    def _submit(self, entries: list[tuple[int, int, int, bool]]) -> None:
        batch = self._batch
        for index, (token, position, seq_id, wants_logits) in enumerate(entries):
            batch.token[index] = token
            batch.pos[index] = position
            batch.n_seq_id[index] = 1
            batch.seq_id[index][0] = seq_id
            batch.logits[index] = wants_logits
        batch.n_tokens = len(entries)
        status = self._api.llama_decode(self._ctx, batch)
        if status == 1 and self._drop_idle_cache():
            status = self._api.llama_decode(self._ctx, batch)
        if status == 1:
            raise RateLimitError(
                f"the model {self.label!r} has no KV cache room left ({self._kv_cells} cells "
                "shared by its running requests); retry shortly",
                code="model_at_capacity",
                provider="local",
                retry_after=1.0,
            )
        if status != 0:
            raise RuntimeError(f"llama_decode failed with status {status}")

    def _drop_idle_cache(self) -> bool:
        """Give back the cells idle sequences hold; whether there were any. llama.cpp finds
        room for a batch before it changes the cache, so a batch refused for room can be
        submitted again."""
        held = [seq_id for seq_id in self._idle if self._held[seq_id]]
        for seq_id in held:
            self._forget(seq_id)
        return bool(held)

    def _logits(self, rows: int) -> np.ndarray:
        """The output rows of the last decode, in batch order (a view into llama.cpp's buffer)."""
        pointer = self._api.llama_get_logits(self._ctx)
        return np.ctypeslib.as_array(pointer, shape=(rows, self._vocab))

    def _keep(self, rows: list[int]) -> None:
        kept = set(rows)
        released = [seq_id for row, seq_id in enumerate(self._rows) if row not in kept]
        if not self.prompt_cache:
            for seq_id in released:
                self._forget(seq_id)
        self._idle += released
        self._rows = [self._rows[row] for row in rows]

    def _release(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx:
            self._api.llama_batch_free(self._batch)
            self._api.llama_free(ctx)
