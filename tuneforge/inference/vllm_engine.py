"""An `Engine` backed by vLLM (`WorkerSpec.engine == "vllm"`): vLLM's own continuous batching and paged KV cache.

Runs inside a worker process started with the interpreter that has vLLM installed (TUNEFORGE_VLLM_PYTHON, so
vLLM's pins never touch tuneforge's environment). tuneforge renders the prompt itself (tuneforge.inference.prompts)
and hands vLLM token ids, so the same request reads the same tokens on either engine; sampling parameters, stop
sequences, token counts and stop reasons map one to one. One thread steps vLLM's `LLMEngine`; requests are
added and aborted under a lock between steps.

Limits of this first version: base models only (no adapters yet: multi-LoRA comes with `max_loras`); vLLM's CPU
attention needs a head dimension it has kernels for (32 and up: a 16-wide head fails at load, with vLLM's error).
"""

from __future__ import annotations

import collections
import secrets
import threading
import time
from pathlib import Path

from tuneforge.errors import InvalidInput, ModelFailure, PromptTooLong, TuneforgeError
from tuneforge.inference.handle import RequestHandle, queue_full
from tuneforge.inference.params import Delta, GenerationRequest, GenerationResult, StopReason
from tuneforge.inference.prompts import prompt_ids


class VllmEngine:
    def __init__(self, checkpoint: Path, *, device: str = "auto", dtype: str = "auto", adapter: Path | None = None,
                 max_batch_size: int = 8, max_queue: int = 64) -> None:
        if adapter is not None:
            raise InvalidInput("the vllm engine serves base models so far: serve this custom model with engine 'builtin'",
                               field="engine")
        from transformers import AutoTokenizer
        from vllm import EngineArgs, LLMEngine

        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        args = EngineArgs(model=str(checkpoint), dtype="auto" if dtype == "auto" else dtype, max_num_seqs=max_batch_size,
                          enforce_eager=True, seed=0)
        self._vllm = LLMEngine.from_engine_args(args)
        config = self._vllm.model_config
        self.context_length = int(config.max_model_len)
        self.dtype = str(config.dtype).removeprefix("torch.")
        self.device = "cpu" if _on_cpu() else "cuda"
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._new: collections.deque[RequestHandle] = collections.deque()  # guarded by _lock
        self._live: dict[str, _Request] = {}  # scheduler thread only
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="tuneforge-vllm-scheduler", daemon=True)
        self._thread.start()

    # ---- Engine ---------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> RequestHandle:
        handle = RequestHandle(request)
        with self._lock:
            if self._closing:
                raise ModelFailure("the vllm engine is closed: start a new one to serve more requests")
            waiting = len(self._new) + max(0, len(self._live) - self.max_batch_size)
            if waiting >= self.max_queue:
                raise queue_full(waiting, self.max_queue)
            self._new.append(handle)
            self._wakeup.notify()
        return handle

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return self.submit(request).result()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wakeup.notify()
        self._thread.join()

    # ---- the scheduler thread --------------------------------------------------------------------
    def _run(self) -> None:
        error: TuneforgeError = ModelFailure("the vllm engine was closed before this request finished")
        try:
            while True:
                with self._lock:
                    while not self._new and not self._live and not self._closing:
                        self._wakeup.wait()
                    if self._closing:
                        break
                    new, self._new = list(self._new), collections.deque()
                for handle in new:
                    self._add(handle)
                for rid, live in list(self._live.items()):
                    if live.handle.cancelled:
                        self._vllm.abort_request([rid])
                        del self._live[rid]
                if self._live:
                    for output in self._vllm.step():
                        self._deliver(output)
        except BaseException as exc:  # a failing step must not leave clients waiting forever
            error = ModelFailure(f"the vllm engine stopped: {type(exc).__name__}: {exc}")
            raise
        finally:
            with self._lock:
                self._closing = True
                pending = list(self._new)
            for live in self._live.values():
                live.handle._fail(error)
            for handle in pending:
                handle._fail(error)

    def _add(self, handle: RequestHandle) -> None:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        request = handle.request
        try:
            ids = prompt_ids(self.tokenizer, request)
            if len(ids) >= self.context_length:
                raise PromptTooLong(
                    f"the prompt is {len(ids)} tokens, longer than the model's context of {self.context_length}: shorten it",
                    field="prompt" if request.prompt is not None else "messages",
                )
        except TuneforgeError as exc:
            handle._fail(exc)
            return
        p = request.params
        budget = min(p.max_tokens, self.context_length - len(ids))  # as the built-in engine: stop where the context ends
        sampling = SamplingParams(
            temperature=p.temperature, top_p=p.top_p if p.temperature > 0 else 1.0, max_tokens=budget,
            stop=list(p.stop) or None, seed=p.seed if p.seed is not None else secrets.randbits(31),
            ignore_eos=p.ignore_eos, output_kind=RequestOutputKind.DELTA, skip_special_tokens=True,
        )
        rid = secrets.token_hex(8)
        self._vllm.add_request(rid, {"prompt_token_ids": ids}, sampling)
        self._live[rid] = _Request(handle, len(ids))

    def _deliver(self, output) -> None:
        live = self._live.get(output.request_id)
        if live is None:
            return
        piece = output.outputs[0]
        live.tokens += len(piece.token_ids)
        if piece.text:
            live.text.append(piece.text)
            live.handle._put(Delta(piece.text))
        if output.finished:
            del self._live[output.request_id]
            if piece.finish_reason == "length":
                reason = StopReason.LENGTH
            else:  # "stop": the end token (stop_reason None or the id) or one of the stop strings
                reason = StopReason.STOP_SEQUENCE if isinstance(piece.stop_reason, str) else StopReason.END
            elapsed = time.perf_counter() - live.handle.submitted_at
            live.handle._put(Delta("", GenerationResult("".join(live.text), live.prompt_tokens, live.tokens, reason,
                                                        total_seconds=elapsed)))


class _Request:
    def __init__(self, handle: RequestHandle, prompt_tokens: int) -> None:
        self.handle = handle
        self.prompt_tokens = prompt_tokens
        self.tokens = 0
        self.text: list[str] = []


def _on_cpu() -> bool:
    import torch

    return not torch.cuda.is_available()
