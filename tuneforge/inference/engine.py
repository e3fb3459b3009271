"""The local generation engine: a Hugging Face causal LM with a KV cache, token by token, streaming.

Runs in a worker process (it imports torch). One request at a time; batching across requests is
`batch_engine`'s job. Greedy at temperature 0, else temperature + nucleus (top_p) sampling with a per-request
torch.Generator (seeded when the request gives a seed, so results repeat). Stop sequences are matched on
the decoded text and cut from the output; text that could still become a stop sequence is held back
while streaming, so a stream never emits part of a stop sequence.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from tuneforge.errors import PromptTooLong
from tuneforge.inference.device import pick_device, pick_dtype
from tuneforge.inference.params import Delta, GenerationRequest, GenerationResult, SamplingParams, StopReason
from tuneforge.inference.prompts import prompt_ids


class LocalEngine:
    def __init__(self, checkpoint: Path, *, device: str = "auto", dtype: str = "auto", adapter: Path | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(adapter or checkpoint)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=self.dtype)
        if adapter is not None:
            from peft import PeftModel

            # merged once at load: generation then runs at the base model's speed
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        self.model = model.to(self.device).eval()
        config = self.model.config
        self.context_length = int(getattr(config, "max_position_embeddings", 0) or 2048)
        eos = self.model.generation_config.eos_token_id if self.model.generation_config else None
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}

    # ---- prompt ---------------------------------------------------------------------------------
    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        return prompt_ids(self.tokenizer, request)

    # ---- generation -----------------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> GenerationResult:
        result = None
        for delta in self.stream(request):
            result = delta.result
        assert result is not None
        return result

    @torch.inference_mode()
    def stream(self, request: GenerationRequest) -> Iterator[Delta]:
        started = time.perf_counter()
        params = request.params
        ids = self.prompt_ids(request)
        if len(ids) >= self.context_length:
            raise PromptTooLong(
                f"the prompt is {len(ids)} tokens, longer than the model's context of {self.context_length}: shorten it",
                field="prompt" if request.prompt is not None else "messages",
            )
        budget = min(params.max_tokens, self.context_length - len(ids))
        generator = torch.Generator(device=self.device)
        generator.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
        decoder = StreamDecoder(self.tokenizer, params.stop)

        cache = None
        inputs = torch.tensor([ids], device=self.device)
        generated: list[int] = []
        reason = StopReason.LENGTH
        first_token_at = 0.0
        while len(generated) < budget:
            out = self.model(input_ids=inputs, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            token = sample(out.logits[0, -1].float(), params, generator)
            if not generated:
                first_token_at = time.perf_counter() - started
            if token in self.eos_ids and not params.ignore_eos:
                reason = StopReason.END
                break
            generated.append(token)
            piece, stopped = decoder.push(token)
            if stopped:
                reason = StopReason.STOP_SEQUENCE
                if piece:
                    yield Delta(piece)
                break
            if piece:
                yield Delta(piece)
            inputs = torch.tensor([[token]], device=self.device)
        tail = "" if reason is StopReason.STOP_SEQUENCE else decoder.flush()
        yield Delta(
            tail,
            GenerationResult(
                text=decoder.text,
                prompt_tokens=len(ids),
                completion_tokens=len(generated),
                stop_reason=reason,
                first_token_seconds=first_token_at,
                total_seconds=time.perf_counter() - started,
            ),
        )


def sample(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
    if params.temperature == 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        # keep the smallest prefix whose mass reaches top_p (always at least the top token)
        keep = (cumulative - sorted_probs) < params.top_p
        keep[0] = True
        sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


class StreamDecoder:
    """Incremental detokenization with stop-sequence matching.

    Decodes the whole completion each step (cheap next to a forward pass) so multi-token characters and
    tokenizer whitespace rules come out right; emits only text that is final.
    """

    def __init__(self, tokenizer, stops: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        self.stops = stops
        self.tokens: list[int] = []
        self.text = ""  # the completion as it stands (cut at a stop sequence once one is found)
        self.emitted = 0

    def push(self, token: int) -> tuple[str, bool]:
        self.tokens.append(token)
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
            return "", False
        self.text = text
        if self.stops:
            search_from = max(0, self.emitted - max(len(s) for s in self.stops))
            hits = [i for i in (text.find(s, search_from) for s in self.stops) if i >= 0]
            if hits:
                self.text = text[: min(hits)]
                piece = self.text[self.emitted :]
                self.emitted = len(self.text)
                return piece, True
        safe = len(text) - self._held_back(text)
        piece = text[self.emitted : safe] if safe > self.emitted else ""
        self.emitted = max(self.emitted, safe)
        return piece, False

    def _held_back(self, text: str) -> int:
        """Length of the longest text suffix that is a proper prefix of a stop sequence."""
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:n]):
                    longest = n
                    break
        return longest

    def flush(self) -> str:
        piece = self.text[self.emitted :]
        self.emitted = len(self.text)
        return piece
