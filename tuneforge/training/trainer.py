"""The training loop of a customization job: LoRA or full fine-tuning, or continued pre-training, of a causal LM.

    from tuneforge.training import TrainConfig, parse_hyperparameters, train
    hp = parse_hyperparameters({"epochCount": "3"}, family="default")
    result = train(TrainConfig(base=Path("ckpt"), kind=Customization.FINE_TUNING, training=records,
                               output=Path("out"), hparams=hp), on_step=print, should_stop=lambda: False)

It runs in the job's own process (it imports torch) and reads top to bottom: build (model, data, optimizer,
schedule), resume, then epochs of steps, validation after each epoch, checkpoints, the final artifact.

- Optimizer AdamW (torch defaults: betas 0.9/0.999, eps 1e-8); weight decay on matrices only, not norms or biases.
- Learning rate: linear warmup over warmupSteps (step s runs at (s+1)/warmup of the peak), then linear decay to
  1/(steps-warmup) of the peak at the last step. No step runs at zero.
- Loss: cross entropy summed over every learned token of the accumulation window, divided by their count, so
  each learned token weighs the same however the examples fall into micro-batches and forward passes (a
  micro-batch over `tokens_per_forward` padded tokens is split to bound activation memory). Grad norm clipped to 1.0.
- Precision: fp32 master weights; bf16 autocast where the hardware has it (CPU with AVX512-BF16/AMX, CUDA).
  SmolLM2-135M LoRA on this AVX512-BF16 EPYC: 166 tokens per CPU-second with bf16 autocast vs 107 in fp32 (1.55x);
  a full fine-tune on a quiet machine, 2 threads: 4.1 s vs 6.3 s for 1,000 tokens. On the tiny test model bf16
  is 1.4-2x slower (casts cost more than its tiny matmuls save); "auto" still picks bf16, for real models.
- Same seed, same data, same machine -> the same losses: the seed drives the LoRA init, dropout and the
  per-epoch batch order (`data.epoch_batches(seed, epoch)`).
- Checkpoints `<output>/checkpoints/step-<N>/` (N = steps done) after every checkpointEveryEpochs epochs and
  on a stop request: trainable weights (PEFT adapter or full model, safetensors), optimizer, scheduler, RNG
  states and the step, from which the data position follows. Written to a temp dir and renamed; only the
  newest is kept. `resume=True` continues from it (or starts fresh if there is none) with the same losses.
- Output: `<output>/model/` (adapter or full model, tokenizer, tuneforge-artifact.json) and Bedrock's metric
  CSVs (see metrics.py).
- Preference tuning (DPO, kind PREFERENCE_TUNING) runs on the same loop (optimizer, schedule, checkpoints, stop,
  metrics files): only what a step computes differs, an `Objective` (tuneforge.training.preference).
Limits: one process on one device; float16 is refused (it would need loss scaling); examples are held in memory.
torch runs one OpenMP thread per core: next to another busy process those threads stall at every barrier (tiny
ops ran 60x slower), so give concurrent jobs `threads` = cores / jobs.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from tuneforge.catalog.entries import Customization
from tuneforge.errors import InvalidInput
from tuneforge.inference.device import pick_device, pick_dtype
from tuneforge.training.data import (
    IGNORE, Batch, Example, collate, epoch_batches, fine_tuning_examples, forward_chunks, pretraining_rows,
)
from tuneforge.training.hparams import ALL_LINEAR, Hyperparameters
from tuneforge.training.lengths import DEFAULT_MAX_LEN, training_length
from tuneforge.training.metrics import TRAINING_COLUMNS, TRAINING_CSV, VALIDATION_COLUMNS, VALIDATION_CSV, MetricsCsv, perplexity

Records = Sequence[Mapping[str, Any]] | Callable[[], Iterable[Mapping[str, Any]]]
ARTIFACT_FILE = "tuneforge-artifact.json"
MAX_GRAD_NORM = 1.0
# Padded tokens in one forward pass. Activations kept for backward take 2-3 MB a token for SmolLM2-135M (RSS,
# bf16 autocast or fp32), so 4-6 GB; a bigger micro-batch is split into several passes (data.forward_chunks).
# Unsplit, 8 x ~400 tokens peaked at 6.7 GB (bf16) to 9.3 GB; on the shared 23 GB machine a job at 11.7 GB was OOM-killed.
TOKENS_PER_FORWARD = 2048


@dataclass(frozen=True)
class TrainConfig:
    base: Path  # a Hugging Face checkpoint directory (config, safetensors, tokenizer)
    kind: Customization  # FINE_TUNING, CONTINUED_PRE_TRAINING or PREFERENCE_TUNING
    training: Records  # validated records, or a function returning a fresh iterable of them
    output: Path
    hparams: Hyperparameters = field(default_factory=Hyperparameters)
    validation: Records | None = None
    device: str = "auto"  # auto | cpu | cuda[:N]
    dtype: str = "auto"  # compute dtype under autocast: auto | bfloat16 | float32
    resume: bool = False
    threads: int | None = None  # CPU threads for torch (process-wide); None keeps torch's default, one per core
    tokens_per_forward: int = TOKENS_PER_FORWARD
    # preference tuning: the reference log-probabilities computed once before training ("precomputed") or by a
    # second forward pass in every step ("per-step"); bench/dpo_throughput.py measures both
    reference: str = "precomputed"


@dataclass(frozen=True)
class StepMetrics:
    step: int  # optimizer step, from 0
    epoch: int  # from 0
    loss: float  # token-weighted over the step's learned tokens
    perplexity: float
    learning_rate: float
    tokens: int  # learned tokens in the step
    tokens_per_second: float  # input tokens (padding excluded) per second of the step
    grad_norm: float
    tokens_trained: int = 0  # input tokens (padding excluded) of every step so far, before a resume included
    total_steps: int = 0  # optimizer steps of the whole run
    metrics: dict[str, float] = field(default_factory=dict)  # the objective's own (DPO: rewards, margin, accuracy)


@dataclass(frozen=True)
class TrainResult:
    training_loss: float | None  # the last step's
    validation_loss: float | None  # after the last completed epoch
    steps: int
    epochs: int  # completed
    stopped: bool
    artifact_dir: Path | None  # None when stopped
    tokens_per_second: float
    examples: int
    truncated: int  # fine-tuning examples cut at maxSequenceLength
    max_len: int = DEFAULT_MAX_LEN  # the training length used (tuneforge.training.lengths)
    tokens_trained: int = 0  # input tokens (padding excluded) of every step, before a resume included
    training_metrics: dict[str, float] = field(default_factory=dict)  # the last step's own metrics (DPO: rewards ...)
    validation_metrics: dict[str, float] = field(default_factory=dict)  # after the last completed epoch


@dataclass(frozen=True)
class StepOutcome:
    loss: float  # the step's loss, normalized as the objective defines it
    learned: int  # learned (target) tokens
    tokens: int  # real input tokens of the forward passes that learn
    metrics: dict[str, float] = field(default_factory=dict)


class Objective(Protocol):
    """What a step computes, on the loop that `train` shares: language modeling (fine-tuning, pre-training) or DPO."""

    lengths: list[int]  # per item (example or pair): what length-grouped batches sort by
    training_columns: tuple[str, ...]  # the metric CSVs' columns
    validation_columns: tuple[str, ...]
    validating: bool  # it has validation data

    def step(self, model: Any, window: list[list[int]]) -> StepOutcome:
        """Forward and backward over one optimizer step's micro-batches (item indices); gradients accumulate."""
        ...

    def validate(self, model: Any) -> tuple[float, dict[str, float]]:
        """The validation loss and metrics."""
        ...


# ---- build ----------------------------------------------------------------------------------------------------------
def _autocast_dtype(requested: str, device: torch.device) -> torch.dtype | None:
    if requested == "float16":
        raise InvalidInput("float16 training needs loss scaling, which tuneforge does not do: use bfloat16 or float32", field="dtype")
    return torch.bfloat16 if pick_dtype(requested, device) is torch.bfloat16 else None  # None: plain float32


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA


def _build_model(cfg: TrainConfig, checkpoint: Path | None, device: torch.device) -> Any:
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    hp = cfg.hparams
    full_from_checkpoint = checkpoint is not None and hp.method == "full"
    source = checkpoint / "model" if full_from_checkpoint else cfg.base
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, attn_implementation="sdpa")
    if hp.method == "lora":
        if checkpoint is not None:
            model = PeftModel.from_pretrained(model, checkpoint / "adapter", is_trainable=True)
        else:
            modules = ALL_LINEAR if hp.lora_target_modules == (ALL_LINEAR,) else list(hp.lora_target_modules)
            lora = LoraConfig(r=hp.lora_rank, lora_alpha=hp.lora_alpha, lora_dropout=hp.lora_dropout,
                              target_modules=modules, task_type="CAUSAL_LM")
            try:
                model = get_peft_model(model, lora)
            except ValueError as error:  # peft names the modules it could not find
                raise InvalidInput(f"hyperParameters.loraTargetModules: {error}", field="hyperParameters") from error
    return model.to(device).train()


def _optimizer(model: Any, hp: Hyperparameters) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": hp.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},  # norms and biases
    ]
    return torch.optim.AdamW(groups, lr=hp.learning_rate)


def _schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(total - step, 1) / max(total - warmup, 1)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _rows(records: Records | None) -> Iterable[Mapping[str, Any]]:
    if records is None:
        return []
    return records() if callable(records) else records


def _examples(cfg: TrainConfig, records: Records, tokenizer: Any, max_len: int, eos_ids: list[int], source: str) -> tuple[list[Example], int]:
    rows = _rows(records)
    if cfg.kind == Customization.CONTINUED_PRE_TRAINING:
        return pretraining_rows(tokenizer, rows, max_len=max_len, eos_id=eos_ids[0], source=source), 0
    if cfg.kind == Customization.FINE_TUNING:
        return fine_tuning_examples(tokenizer, rows, max_len=max_len, eos_ids=eos_ids, source=source)
    raise InvalidInput(f"customizationType {cfg.kind} is not trained by tuneforge: use FINE_TUNING, CONTINUED_PRE_TRAINING "
                       "or PREFERENCE_TUNING",
                       field="customizationType")


# ---- one step -------------------------------------------------------------------------------------------------------
def _loss_sum(model: Any, batch: Batch, autocast: torch.dtype | None, device: torch.device) -> torch.Tensor:
    """Summed cross entropy of the batch's learned tokens; logits are computed at those positions only."""
    keep = batch.targets != IGNORE
    with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, logits_to_keep=keep, use_cache=False).logits
    return F.cross_entropy(logits.float(), batch.targets[keep], reduction="sum")


@torch.no_grad()
def _validation_loss(model: Any, examples: list[Example], max_tokens: int, pad_id: int,
                     autocast: torch.dtype | None, device: torch.device) -> float:
    model.eval()
    total = tokens = 0.0
    for chunk in forward_chunks(examples, max_tokens=max_tokens):  # sorted by length: little padding
        batch = collate(chunk, pad_id=pad_id).to(device)
        total += _loss_sum(model, batch, autocast, device).item()
        tokens += batch.target_tokens
    model.train()
    return total / max(tokens, 1)


@dataclass
class LanguageModeling:
    """Fine-tuning and continued pre-training: token-weighted cross entropy (see the module docstring)."""

    examples: list[Example]
    validation: list[Example]
    pad_id: int
    device: torch.device
    autocast: torch.dtype | None
    tokens_per_forward: int
    training_columns: tuple[str, ...] = TRAINING_COLUMNS
    validation_columns: tuple[str, ...] = VALIDATION_COLUMNS

    def __post_init__(self) -> None:
        self.lengths = [len(e.input_ids) for e in self.examples]
        self.validating = bool(self.validation)

    def step(self, model: Any, window: list[list[int]]) -> StepOutcome:
        batches = [
            collate(chunk, pad_id=self.pad_id).to(self.device)
            for b in window
            for chunk in forward_chunks([self.examples[i] for i in b], max_tokens=self.tokens_per_forward)
        ]
        learned = sum(b.target_tokens for b in batches)
        total = 0.0
        for batch in batches:
            loss_sum = _loss_sum(model, batch, self.autocast, self.device)
            (loss_sum / learned).backward()
            total += loss_sum.item()
        return StepOutcome(total / learned, learned, sum(b.tokens for b in batches))

    def validate(self, model: Any) -> tuple[float, dict[str, float]]:
        return _validation_loss(model, self.validation, self.tokens_per_forward, self.pad_id, self.autocast, self.device), {}


# ---- checkpoints ----------------------------------------------------------------------------------------------------
def latest_checkpoint(output: Path) -> Path | None:
    done = [p for p in (output / "checkpoints").glob("step-*") if (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.removeprefix("step-")), default=None)


def _save_checkpoint(output: Path, step: int, state: dict[str, Any], model: Any, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LambdaLR, lora: bool) -> Path:
    final = output / "checkpoints" / f"step-{step}"
    if not final.exists():  # a stop request right after an epoch's checkpoint finds it written
        tmp = output / "checkpoints" / f".tmp-step-{step}"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp / ("adapter" if lora else "model"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        rng["numpy"] = (rng["numpy"][0], torch.from_numpy(rng["numpy"][1].astype(np.int64)), *rng["numpy"][2:])
        torch.save(rng, tmp / "rng.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))  # written last: marks it complete
        tmp.rename(final)
    for old in (output / "checkpoints").glob("step-*"):
        if old != final:
            shutil.rmtree(old)
    return final


def _restore(checkpoint: Path, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
             expected: dict[str, Any]) -> dict[str, Any]:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    changed = [k for k in expected if state.get(k) != expected[k]]
    if changed:
        raise InvalidInput(
            f"the checkpoint {checkpoint} was written by a run with different {', '.join(changed)}: resume with the "
            "same hyperparameters and data, or start over without resume", field="resume",
        )
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    rng = torch.load(checkpoint / "rng.pt", weights_only=True)
    random.setstate(rng["python"])
    np.random.set_state((rng["numpy"][0], rng["numpy"][1].numpy().astype(np.uint32), *rng["numpy"][2:]))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"]:
        torch.cuda.set_rng_state_all(rng["cuda"])
    return state


def _save_artifact(cfg: TrainConfig, model: Any, tokenizer: Any, summary: dict[str, Any]) -> Path:
    final, tmp = cfg.output / "model", cfg.output / ".tmp-model"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)  # LoRA: adapter_model.safetensors + adapter_config.json; full: the whole model
    tokenizer.save_pretrained(tmp)
    artifact = {"base": str(cfg.base), "method": cfg.hparams.method, "customizationType": str(cfg.kind),
                "hyperparameters": cfg.hparams.to_dict(), **summary}
    (tmp / ARTIFACT_FILE).write_text(json.dumps(artifact, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


# ---- train ----------------------------------------------------------------------------------------------------------
def train(
    cfg: TrainConfig,
    *,
    on_step: Callable[[StepMetrics], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    from transformers import AutoTokenizer

    hp = cfg.hparams
    lora = hp.method == "lora"
    device = pick_device(cfg.device)
    autocast = _autocast_dtype(cfg.dtype, device)
    checkpoint = latest_checkpoint(cfg.output) if cfg.resume else None
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _seed(hp.seed)

    # ---- model and data
    tokenizer = AutoTokenizer.from_pretrained(cfg.base)
    model = _build_model(cfg, checkpoint, device)
    context = int(getattr(model.config, "max_position_embeddings", 0) or DEFAULT_MAX_LEN)
    # Pre-training: rows of the training length. Fine-tuning without maxSequenceLength: examples are cut only at
    # the context (the validator refuses longer ones), and the length is then what the longest example needs.
    cut_at = training_length(cfg.kind, context=context, max_sequence_length=hp.max_sequence_length, longest=context)
    eos = model.generation_config.eos_token_id if model.generation_config else None
    eos_ids = [tokenizer.eos_token_id] + [e for e in (eos if isinstance(eos, list) else [eos]) if e not in (None, tokenizer.eos_token_id)]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    objective: Objective
    if cfg.kind == Customization.PREFERENCE_TUNING:
        from tuneforge.training.preference import Dpo, preference_pairs

        if not lora:
            raise InvalidInput("hyperParameters.method: preference tuning trains a LoRA adapter; use method lora",
                               field="hyperParameters")
        pairs, truncated = preference_pairs(tokenizer, _rows(cfg.training), max_len=cut_at, eos_ids=eos_ids, source="training")
        held_out = preference_pairs(tokenizer, _rows(cfg.validation), max_len=cut_at, eos_ids=eos_ids,
                                    source="validation")[0] if cfg.validation is not None else []
        longest = max((max(len(p.chosen.input_ids), len(p.rejected.input_ids)) for p in pairs), default=0)
        objective = Dpo(model, pairs, held_out, beta=hp.beta, pad_id=pad_id, device=device, autocast=autocast,
                        tokens_per_forward=cfg.tokens_per_forward, reference=cfg.reference)
    else:
        examples, truncated = _examples(cfg, cfg.training, tokenizer, cut_at, eos_ids, "training")
        validation = _examples(cfg, cfg.validation, tokenizer, cut_at, eos_ids, "validation")[0] if cfg.validation is not None else []
        longest = max((len(e.input_ids) for e in examples), default=0)
        objective = LanguageModeling(examples, validation, pad_id, device, autocast, cfg.tokens_per_forward)
    items = len(objective.lengths)
    if not items:
        raise InvalidInput("the training data holds no example to learn from", field="trainingDataConfig")
    max_len = training_length(cfg.kind, context=context, max_sequence_length=hp.max_sequence_length, longest=longest)

    # ---- optimizer, schedule, position
    micro_batches = math.ceil(items / hp.batch_size)
    steps_per_epoch = math.ceil(micro_batches / hp.gradient_accumulation_steps)
    total_steps = steps_per_epoch * hp.epoch_count
    optimizer = _optimizer(model, hp)
    scheduler = _schedule(optimizer, hp.warmup_steps, total_steps)
    identity = {"hyperparameters": hp.to_dict(), "examples": items, "kind": str(cfg.kind)}
    restored = _restore(checkpoint, optimizer, scheduler, identity) if checkpoint else {}
    step, tokens_before = restored.get("step", 0), restored.get("tokens_trained", 0)
    resumed_from = step - 1 if checkpoint else None  # metric rows past it are replayed, so dropped
    train_csv = MetricsCsv(cfg.output / TRAINING_CSV, objective.training_columns, keep_through_step=resumed_from)
    val_csv = (MetricsCsv(cfg.output / VALIDATION_CSV, objective.validation_columns, keep_through_step=resumed_from)
               if objective.validating else None)

    def save(at: int) -> Path:
        state = {**identity, "step": at, "epoch": at // steps_per_epoch, "step_in_epoch": at % steps_per_epoch,
                 "tokens_trained": tokens_before + seen_tokens}
        return _save_checkpoint(cfg.output, at, state, model, optimizer, scheduler, lora)

    # ---- loop
    loss = val_loss = None
    step_metrics: dict[str, float] = {}
    val_metrics: dict[str, float] = {}
    seen_tokens, busy = 0, 0.0
    stopped = False
    params = [p for p in model.parameters() if p.requires_grad]
    for epoch in range(step // steps_per_epoch, hp.epoch_count):
        batches = epoch_batches(objective.lengths, batch_size=hp.batch_size, seed=hp.seed, epoch=epoch)
        for in_epoch in range(step % steps_per_epoch, steps_per_epoch):
            if should_stop is not None and should_stop():
                save(step)
                stopped = True
                break
            started = time.perf_counter()
            accumulate = hp.gradient_accumulation_steps
            outcome = objective.step(model, batches[in_epoch * accumulate : (in_epoch + 1) * accumulate])
            grad_norm = torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM).item()
            learning_rate = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - started
            seen_tokens, busy = seen_tokens + outcome.tokens, busy + elapsed
            loss, step_metrics = outcome.loss, outcome.metrics
            train_csv.write(step, epoch, loss, step_metrics)
            if on_step is not None:
                on_step(StepMetrics(step, epoch, loss, perplexity(loss), learning_rate, outcome.learned, outcome.tokens / elapsed,
                                    grad_norm, tokens_trained=tokens_before + seen_tokens, total_steps=total_steps,
                                    metrics=step_metrics))
            step += 1
        if stopped:
            break
        if val_csv is not None:
            val_loss, val_metrics = objective.validate(model)
            val_csv.write(step - 1, epoch, val_loss, val_metrics)
        if (epoch + 1) % hp.checkpoint_every_epochs == 0:
            save(step)
    train_csv.close()
    if val_csv is not None:
        val_csv.close()

    summary = {"steps": step, "trainingLoss": loss, "validationLoss": val_loss, "maxSequenceLength": max_len,
               **({"trainingMetrics": step_metrics, "validationMetrics": val_metrics} if step_metrics or val_metrics else {})}
    artifact = None if stopped else _save_artifact(cfg, model, tokenizer, summary)
    return TrainResult(
        training_loss=loss, validation_loss=val_loss, steps=step, epochs=step // steps_per_epoch, stopped=stopped,
        artifact_dir=artifact, tokens_per_second=seen_tokens / busy if busy else 0.0, examples=items,
        truncated=truncated, max_len=max_len, tokens_trained=tokens_before + seen_tokens,
        training_metrics=step_metrics, validation_metrics=val_metrics,
    )
