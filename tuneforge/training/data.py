"""Validated records -> token examples with label masks -> batches.

Record shapes (checked upstream, read here):
- Fine-tuning `{"prompt", "completion"}`: prompt ids + completion ids + EOS; only the completion and EOS are learned.
  The prompt's ids are exactly what inference feeds (`tokenizer(prompt)`, default special tokens). The completion
  continues after them: tokenized in context when the prompt's ids are a prefix of `tokenizer(prompt + completion)`,
  else (the boundary fused, e.g. "Summary: " ends in a standalone space token that "Summary: The" merges into
  "ĠThe") tokenized on its own, after a newline anchor that is dropped so that SentencePiece's dummy-prefix space is
  not added. If the prompt ends in a space, leading spaces of the completion are dropped, so the model never learns a
  double space. EOS always ends the example, so the model learns to stop.
- Fine-tuning chat `{"messages": [{"role", "content"}...], "system"?}` (content a string or Bedrock's
  `[{"text": ...}]`): the prefix up to the last assistant turn is rendered with `add_generation_prompt=True`, as
  inference does; the last assistant turn up to and including its end-of-turn EOS is learned (EOS appended if
  the template has none). Earlier assistant turns are context only.
- Continued pre-training `{"input"}`: every token is learned. Documents end in EOS and are packed back to back
  into rows of maxSequenceLength; a long document continues in the next row. Position ids restart at 0 at every
  document start and row start.

Fine-tuning batches are padded, not packed: each example is a row, padded at the end (the padding continues
the row's positions, so plain causal attention keeps it out of real tokens), and an epoch's batches are
length-grouped (`epoch_batches`) so rows of a batch have similar lengths: 2.6% padding on DialogSum at batch 8,
against 41% for random batches. Packing several examples into one row needs a block-diagonal mask, and with a
mask torch's CPU attention computes the whole row x row square instead of skipping the upper triangle. Pre-training
rows are packed anyway (documents run back to back); their position ids restart at each document, from which
transformers 5 (`masking_utils.find_packed_sequence_indices`, only with no attention mask and no KV cache, so
`use_cache=False`) builds the block-diagonal causal mask; tests check the logits against each example alone.
Targets are shifted here (targets[i] = the label of token i+1 of the same sequence), so the model computes
logits only where a token is learned (`logits_to_keep`): the LM head is skipped on prompt tokens (86% of DialogSum).

Measured: SmolLM2-135M, LoRA r16 all-linear, bf16 autocast, 8 DialogSum records a step, one thread (CPU time,
as other jobs shared the 2-core machine), configurations interleaved step by step:
    padded rows, length-grouped (17-23% padding over only 24-32 records)   166-183 real tokens per CPU-second
    packed rows of <= 1024 tokens, block-diagonal mask (4-11% padding)      130-146
    padded rows, random batches (44-47% padding)                             92-119
Limits: examples are held in memory as token lists (fine for the datasets a CPU trains on); fine-tuning examples
longer than maxSequenceLength are cut at the end (counted; dropped if nothing learned is left).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tuneforge.errors import InvalidInput

IGNORE = -100  # torch cross_entropy's default ignore_index: a position that is not learned
_GROUP = 50  # micro-batches sorted together, as transformers' LengthGroupedSampler (mega_batch_mult)
_ANCHOR = "\n"  # tokenizers do not merge a newline with the next word, so "\n" + text tokenizes text as a continuation


@dataclass(frozen=True)
class Example:
    """One sequence (or, for pre-training, one packed row). labels[i] == input_ids[i] where token i is learned."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]
    position_ids: tuple[int, ...]  # restarts at 0 where a sequence (document) starts

    @property
    def learned(self) -> int:
        return sum(label != IGNORE for label in self.labels)


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # [rows, length]
    position_ids: torch.Tensor  # [rows, length]
    targets: torch.Tensor  # [rows, length]: the token each position should predict, IGNORE where nothing is learned
    tokens: int  # real (non-padding) input tokens
    target_tokens: int  # targets != IGNORE: the loss is normalized by these

    def to(self, device: torch.device) -> Batch:
        return Batch(self.input_ids.to(device), self.position_ids.to(device), self.targets.to(device), self.tokens, self.target_tokens)


# ---- records -> examples ------------------------------------------------------------------------------------------
def _continuation_ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of `text` as it continues other text: no special tokens, no SentencePiece dummy-prefix space."""
    anchor = tokenizer(_ANCHOR, add_special_tokens=False)["input_ids"]
    ids = tokenizer(_ANCHOR + text, add_special_tokens=False)["input_ids"]
    if ids[: len(anchor)] == anchor:
        return ids[len(anchor) :]
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _example(prefix: list[int], answer: list[int]) -> Example:
    ids = prefix + answer
    return Example(tuple(ids), (IGNORE,) * len(prefix) + tuple(answer), tuple(range(len(ids))))


def prompt_completion_example(tokenizer: Any, prompt: str, completion: str, *, eos_id: int) -> Example:
    prompt_ids = tokenizer(prompt)["input_ids"]  # exactly what inference feeds
    if prompt.endswith(" "):
        completion = completion.lstrip(" ")
    joint = tokenizer(prompt + completion)["input_ids"]
    if joint[: len(prompt_ids)] == prompt_ids:
        answer = joint[len(prompt_ids) :]
    else:
        answer = _continuation_ids(tokenizer, completion)
    return _example(prompt_ids, answer + [eos_id])


def _text(content: str | list[Mapping[str, str]]) -> str:
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


def chat_example(tokenizer: Any, record: Mapping[str, Any], *, eos_ids: Sequence[int]) -> Example:
    messages = [{"role": m["role"], "content": _text(m["content"])} for m in record["messages"]]
    if record.get("system"):
        messages.insert(0, {"role": "system", "content": _text(record["system"])})
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None:
        raise InvalidInput("a chat record needs an assistant message to learn from", field="messages")
    prefix_text = tokenizer.apply_chat_template(messages[:last], tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(messages[: last + 1], tokenize=False)
    if not full_text.startswith(prefix_text):
        raise InvalidInput(
            "this model's chat template renders the assistant turn differently from its generation prompt, so "
            "chat records cannot be split into prompt and answer: use prompt/completion records", field="messages"
        )
    prefix = tokenizer(prefix_text, add_special_tokens=False)["input_ids"]  # as the inference engine tokenizes
    answer = _continuation_ids(tokenizer, full_text[len(prefix_text) :])
    end = next((i for i, t in enumerate(answer) if t in eos_ids), None)
    answer = answer[: end + 1] if end is not None else answer + [eos_ids[0]]
    return _example(prefix, answer)


def fine_tuning_examples(
    tokenizer: Any, records: Iterable[Mapping[str, Any]], *, max_len: int, eos_ids: Sequence[int], source: str = "training"
) -> tuple[list[Example], int]:
    """(examples, how many were cut at max_len). Examples with nothing learned left after the cut are dropped."""
    examples: list[Example] = []
    cut = 0
    for number, record in enumerate(records, start=1):
        if "messages" in record:
            example = chat_example(tokenizer, record, eos_ids=eos_ids)
        elif "prompt" in record and "completion" in record:
            example = prompt_completion_example(tokenizer, record["prompt"], record["completion"], eos_id=eos_ids[0])
        else:
            raise InvalidInput(
                f"{source} record {number}: fine-tuning takes {{'prompt', 'completion'}} or {{'messages'}}, "
                f"got keys {sorted(record)}", field=f"{source}DataConfig",
            )
        if len(example.input_ids) > max_len:
            cut += 1
            example = Example(example.input_ids[:max_len], example.labels[:max_len], example.position_ids[:max_len])
        if example.learned:
            examples.append(example)
    return examples, cut


def pretraining_rows(
    tokenizer: Any, records: Iterable[Mapping[str, Any]], *, max_len: int, eos_id: int, source: str = "training"
) -> list[Example]:
    """Pack EOS-terminated documents into rows of max_len tokens (the last row may be shorter)."""
    rows: list[Example] = []
    ids: list[int] = []
    positions: list[int] = []
    for number, record in enumerate(records, start=1):
        if "input" not in record:
            raise InvalidInput(
                f"{source} record {number}: continued pre-training takes {{'input'}}, got keys {sorted(record)}",
                field=f"{source}DataConfig",
            )
        doc = tokenizer(record["input"])["input_ids"] + [eos_id]
        start = 0
        while start < len(doc):
            take = min(max_len - len(ids), len(doc) - start)
            ids += doc[start : start + take]
            positions += range(take)  # restarts at a document start and where a long document continues in a new row
            start += take
            if len(ids) == max_len:
                rows.append(Example(tuple(ids), tuple(ids), tuple(positions)))
                ids, positions = [], []
    if ids:
        rows.append(Example(tuple(ids), tuple(ids), tuple(positions)))
    return rows


# ---- examples -> batches ------------------------------------------------------------------------------------------
def epoch_batches(lengths: Sequence[int], *, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's micro-batches as example indices: shuffled, length-grouped, in a shuffled order.

    Like transformers' LengthGroupedSampler: shuffle, cut into groups of _GROUP micro-batches, sort each group
    by length, cut it into micro-batches, shuffle the micro-batches. Batches hold similar lengths (little
    padding) and still come in a random order. The same (seed, epoch) always gives the same batches.
    """
    rng = np.random.default_rng([seed, epoch])
    order = [int(i) for i in rng.permutation(len(lengths))]
    group = batch_size * _GROUP
    batches: list[list[int]] = []
    for start in range(0, len(order), group):
        chunk = sorted(order[start : start + group], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[int(i)] for i in rng.permutation(len(batches))]


def forward_chunks(rows: Sequence[Example], *, max_tokens: int) -> list[list[Example]]:
    """Split a micro-batch into forward passes of at most max_tokens padded tokens (a longer row goes alone).

    Activation memory grows with the tokens of one forward pass, so this bounds it. Gradients accumulate over
    the chunks and the loss is normalized over the whole window, so the update is the same.
    """
    chunks: list[list[Example]] = [[]]
    for row in sorted(rows, key=lambda r: len(r.input_ids)):  # each row is the longest so far: it sets the width
        if chunks[-1] and (len(chunks[-1]) + 1) * len(row.input_ids) > max_tokens:
            chunks.append([])
        chunks[-1].append(row)
    return chunks


def collate(rows: Sequence[Example], *, pad_id: int) -> Batch:
    """Stack rows, padding the short ones at the end.

    Padding continues the last sequence's positions: it sits after every real token, so causal attention already
    keeps it out of them, and a batch of unpacked rows keeps transformers' fast pure-causal attention path.
    """
    length = max(len(row.input_ids) for row in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    position_ids = torch.arange(length).repeat(len(rows), 1)
    for r, row in enumerate(rows):
        n = len(row.input_ids)
        input_ids[r, :n] = torch.tensor(row.input_ids)
        labels[r, :n] = torch.tensor(row.labels)
        position_ids[r, :n] = torch.tensor(row.position_ids)
        position_ids[r, n:] += row.position_ids[-1] + 1 - n  # continue the last sequence's positions
    targets = torch.full_like(labels, IGNORE)
    targets[:, :-1] = torch.where(position_ids[:, 1:] == 0, IGNORE, labels[:, 1:])  # no target across a sequence start
    tokens = sum(len(row.input_ids) for row in rows)
    return Batch(input_ids, position_ids, targets, tokens, int((targets != IGNORE).sum()))
