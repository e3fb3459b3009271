"""Continuous batching for provisioned throughput: concurrent requests share one model and one KV cache.

    engine = BatchEngine(checkpoint, dtype="bfloat16", max_batch_size=8)
    handle = engine.submit(GenerationRequest(prompt="...", params=SamplingParams(max_tokens=64)))
    for delta in handle:           # streamed text; the last delta carries the GenerationResult
        ...
    engine.close()                 # or use the engine as a context manager

One scheduler thread owns the model (torch releases the GIL inside its kernels, so client threads stay
responsive). Each loop iteration it
  1. admits waiting requests while the batch has free slots: renders and tokenizes the prompt, runs its
     prefill alone (batch 1: the single-request engine's computation), samples the first token and merges
     the request's KV rows into the batch cache;
  2. runs one decode step for every running sequence as one batched forward;
  3. samples per sequence (its own temperature, top_p and seeded generator), streams the new text to the
     request's handle and retires finished sequences (end token, max tokens, stop sequence, context full)
     and cancelled ones.
So requests join and leave the running batch between decode steps (continuous batching).

KV layout: one transformers DynamicCache whose rows are right-aligned. A sequence with n cached tokens
holds the last n columns; the columns before them are zeros, masked out by the attention mask. Positions
(RoPE) are given per sequence, so padding never shifts a sequence: at temperature 0 in float32 each request
gets the tokens the single-request `LocalEngine` produces for it (batched kernels may sum in another order,
so in bfloat16 a near-tie can break differently). When sequences leave, their rows are dropped and the
columns that are padding in every remaining row are cut, so the cache is as wide as the longest sequence.

Timing: `first_token_seconds` and `total_seconds` count from `submit`, so they include time in the queue.
Back-pressure: at most `max_batch_size` sequences run and `max_queue` wait; `submit` beyond that raises
`Throttled` at once instead of queueing without bound.

Limits:
- Only models whose every cache layer is a plain full-attention `DynamicLayer` (Llama, SmolLM2, Qwen2
  without sliding window, ...): sliding-window and linear-attention caches are refused at load.
- Prefill runs one request at a time and is not chunked: a long prompt pauses the others' decoding for
  the length of its prefill.
- The cache grows by concatenation each step (as `model.generate` does), not a paged or static cache.
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tuneforge.errors import InvalidInput, ModelFailure, PromptTooLong, TuneforgeError
from tuneforge.inference.engine import LocalEngine, sample, StreamDecoder
from tuneforge.inference.handle import RequestHandle, queue_full
from tuneforge.inference.params import Delta, GenerationRequest, GenerationResult, SamplingParams, StopReason

if TYPE_CHECKING:
    from transformers import DynamicCache, PreTrainedConfig

@dataclass
class _Sequence:
    """A running request: its place in the batch cache and its decoding state."""

    handle: RequestHandle
    prompt_tokens: int
    budget: int  # completion tokens allowed: max_tokens, or less where the context window ends first
    generator: torch.Generator
    decoder: StreamDecoder
    length: int  # tokens of this sequence in the cache (its last `length` columns)
    next_token: int = -1  # sampled but not yet fed to the model
    generated: list[int] = field(default_factory=list)
    first_token_seconds: float = 0.0

    @property
    def params(self) -> SamplingParams:
        return self.handle.request.params


class BatchEngine:
    """A Hugging Face causal LM serving concurrent requests with continuous batching (see the module doc)."""

    def __init__(
        self,
        checkpoint: Path,
        *,
        device: str = "auto",
        dtype: str = "auto",
        adapter: Path | None = None,
        max_batch_size: int = 8,
        max_queue: int = 64,
    ) -> None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise InvalidInput(f"max_batch_size must be a positive integer, got {max_batch_size!r}", field="max_batch_size")
        # every request passes through the queue, even into a free slot, so it needs room for at least one
        if isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1:
            raise InvalidInput(f"max_queue must be a positive integer, got {max_queue!r}", field="max_queue")
        # loading, adapter merging, prompt rendering and EOS ids are the single-request engine's
        self._engine = LocalEngine(checkpoint, device=device, dtype=dtype, adapter=adapter)
        self.model = self._engine.model
        self.tokenizer = self._engine.tokenizer
        self.device = self._engine.device
        self.dtype = self._engine.dtype
        self.context_length = self._engine.context_length
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        _check_cache_layout(self.model)

        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._waiting: collections.deque[RequestHandle] = collections.deque()  # guarded by _lock
        self._closing = False  # guarded by _lock
        # owned by the scheduler thread: the running sequences, in the order of the cache rows
        self._running: list[_Sequence] = []
        self._cache: DynamicCache | None = None  # one row per running sequence; None when none runs
        self._thread = threading.Thread(target=self._run, name="tuneforge-batch-scheduler", daemon=True)
        self._thread.start()

    # ---- public API -----------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> RequestHandle:
        """Queue a request and return at once. Raises Throttled when `max_queue` requests already wait."""
        handle = RequestHandle(request)
        with self._lock:
            if self._closing:
                raise ModelFailure("the batch engine is closed: start a new one to serve more requests")
            if len(self._waiting) >= self.max_queue:
                raise queue_full(len(self._waiting), self.max_queue)
            self._waiting.append(handle)
            self._wakeup.notify()
        return handle

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Submit and wait for the result (blocking; raises Throttled or the request's error)."""
        return self.submit(request).result()

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The prompt's token ids as the engine will feed them (chat template applied). Tokenizes on the
        caller's thread: fine between requests, as the benchmark does; the scheduler tokenizes its own."""
        return self._engine.prompt_ids(request)

    def close(self) -> None:
        """Stop the scheduler after its current step; requests still running or waiting fail with ModelFailure."""
        with self._lock:
            self._closing = True
            self._wakeup.notify()
        self._thread.join()

    def __enter__(self) -> "BatchEngine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- scheduler thread -----------------------------------------------------------------------
    def _run(self) -> None:
        error = ModelFailure("the batch engine was closed before this request finished: submit it again")
        try:
            with torch.inference_mode():
                while True:
                    with self._lock:
                        while not self._closing and not self._waiting and not self._running:
                            self._wakeup.wait()
                        if self._closing:
                            break
                        free = self.max_batch_size - len(self._running)
                        admitted = [self._waiting.popleft() for _ in range(min(free, len(self._waiting)))]
                    for handle in admitted:
                        self._admit(handle)
                    if self._running:
                        self._decode_step()
        except BaseException as exc:  # a scheduler bug must not leave clients waiting forever
            error = ModelFailure(f"the batch engine stopped: {type(exc).__name__}: {exc}")
            raise
        finally:
            with self._lock:
                self._closing = True
                pending = list(self._waiting)
                self._waiting.clear()
            for seq in self._running:
                seq.handle._fail(error)
            for handle in pending:
                handle._fail(error)
            self._running, self._cache = [], None

    def _admit(self, handle: RequestHandle) -> None:
        """Prefill one request alone, sample its first token and add it to the batch if it goes on."""
        if handle.cancelled:
            return
        request = handle.request
        try:
            ids = self._engine.prompt_ids(request)
            if len(ids) >= self.context_length:
                raise PromptTooLong(
                    f"the prompt is {len(ids)} tokens, longer than the model's context of {self.context_length}: shorten it",
                    field="prompt" if request.prompt is not None else "messages",
                )
        except TuneforgeError as exc:
            handle._fail(exc)
            return
        params = request.params
        generator = torch.Generator(device=self.device)
        generator.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
        seq = _Sequence(
            handle=handle,
            prompt_tokens=len(ids),
            budget=min(params.max_tokens, self.context_length - len(ids)),
            generator=generator,
            decoder=StreamDecoder(self.tokenizer, params.stop),
            length=len(ids),
        )
        try:
            # logits for the last position only: the lm_head over a whole prompt is ~10% of a prefill's work
            out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True, logits_to_keep=1)
            token = sample(out.logits[0, -1].float(), params, generator)
        except Exception as exc:  # this request's forward failed; the batch cache is untouched
            handle._fail(ModelFailure(f"the model failed on this request's prompt: {type(exc).__name__}: {exc}"))
            return
        seq.first_token_seconds = time.perf_counter() - handle.submitted_at
        if not self._take(seq, token):
            self._cache = _merge_rows(self._cache, out.past_key_values, self.model.config)
            self._running.append(seq)

    def _decode_step(self) -> None:
        """One forward for all running sequences, then sample, stream and retire per sequence."""
        running = self._running
        width = self._cache.get_seq_length()
        lengths = torch.tensor([s.length for s in running], device=self.device)
        # row i attends to its own last lengths[i] cached columns plus the token fed now
        mask = (torch.arange(width + 1, device=self.device)[None, :] >= (width - lengths)[:, None]).long()
        try:
            out = self.model(
                input_ids=torch.tensor([[s.next_token] for s in running], device=self.device),
                attention_mask=mask,
                position_ids=lengths[:, None],  # each sequence's own next position: padding never shifts RoPE
                past_key_values=self._cache,
                use_cache=True,
            )
        except Exception as exc:  # the shared cache is now in an unknown state: fail the batch, keep serving
            error = ModelFailure(f"the model failed during a batched decode step: {type(exc).__name__}: {exc}")
            for seq in running:
                seq.handle._fail(error)
            self._running, self._cache = [], None
            return
        logits = out.logits[:, -1].float()
        keep: list[int] = []
        for row, seq in enumerate(running):
            seq.length += 1
            if seq.handle.cancelled:
                continue
            if not self._take(seq, sample(logits[row], seq.params, seq.generator)):
                keep.append(row)
        if len(keep) < len(running):
            self._running = [running[row] for row in keep]
            self._cache = _select_rows(self._cache, keep, [running[row].length for row in keep], self.model.config)

    def _take(self, seq: _Sequence, token: int) -> bool:
        """Record a sampled token and stream its text; True when the sequence has finished (result sent)."""
        if token in self._engine.eos_ids and not seq.params.ignore_eos:
            self._finish(seq, StopReason.END)
            return True
        seq.generated.append(token)
        piece, stopped = seq.decoder.push(token)
        if piece:
            seq.handle._put(Delta(piece))
        if stopped:
            self._finish(seq, StopReason.STOP_SEQUENCE)
            return True
        if len(seq.generated) >= seq.budget:
            self._finish(seq, StopReason.LENGTH)
            return True
        seq.next_token = token
        return False

    def _finish(self, seq: _Sequence, reason: StopReason) -> None:
        # text held back for a possible stop sequence is final now, unless a stop sequence cut it
        tail = "" if reason is StopReason.STOP_SEQUENCE else seq.decoder.flush()
        result = GenerationResult(
            text=seq.decoder.text,
            prompt_tokens=seq.prompt_tokens,
            completion_tokens=len(seq.generated),
            stop_reason=reason,
            first_token_seconds=seq.first_token_seconds,
            total_seconds=time.perf_counter() - seq.handle.submitted_at,
        )
        seq.handle._put(Delta(tail, result))


# ---- the batch cache --------------------------------------------------------------------------------
def _check_cache_layout(model: torch.nn.Module) -> None:
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    kinds = {type(layer).__name__ for layer in DynamicCache(config=model.config).layers}
    if kinds - {DynamicLayer.__name__}:
        raise InvalidInput(
            f"this model's KV cache has {', '.join(sorted(kinds))} layers; the batch engine right-aligns rows of plain "
            "full-attention layers only: serve it with the single-request engine",
            field="checkpoint",
        )


def _left_pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """[batch, heads, n, dim] -> [batch, heads, width, dim] with zero columns in front."""
    missing = width - tensor.shape[-2]
    if missing == 0:
        return tensor
    return torch.nn.functional.pad(tensor, (0, 0, missing, 0))


def _merge_rows(cache: DynamicCache | None, new: DynamicCache, config: PreTrainedConfig) -> DynamicCache:
    """The batch cache with `new` (one sequence's prefill cache) appended as its last row, right-aligned."""
    if cache is None:
        return new
    from transformers import DynamicCache

    width = max(cache.get_seq_length(), new.get_seq_length())
    return DynamicCache(
        [
            (
                torch.cat([_left_pad(old.keys, width), _left_pad(add.keys, width)]),
                torch.cat([_left_pad(old.values, width), _left_pad(add.values, width)]),
            )
            for old, add in zip(cache.layers, new.layers)
        ],
        config=config,
    )


def _select_rows(cache: DynamicCache, rows: list[int], lengths: list[int], config: PreTrainedConfig) -> DynamicCache | None:
    """Keep `rows` of the cache and cut the columns that are padding in all of them (None when no row is left)."""
    if not rows:
        return None
    from transformers import DynamicCache

    start = cache.get_seq_length() - max(lengths)
    index = torch.tensor(rows, device=cache.layers[0].keys.device)
    return DynamicCache(
        [(layer.keys[index, :, start:], layer.values[index, :, start:]) for layer in cache.layers],
        config=config,
    )
