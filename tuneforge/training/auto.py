"""Hyperparameters given as "auto", chosen from the model, the method and the data once the job has read them.

The rules, each the usual practice it comes from; every choice stays within the family's range
(tuneforge.training.hparams) and is recorded with its reason on the job (`jobs get` shows both):

| key | rule |
|---|---|
| epochCount | OpenAI's fine-tuning rule: 3 epochs, more for small sets so that about 100 examples are seen, fewer for large ones so that at most 25,000 are; continued pre-training: 1 (documents are seen once, as in pre-training) |
| batchSize | the family's default, lowered so that an epoch has at least 16 optimizer steps (few records: smaller batches) |
| learningRate | the method's default rate (preference tuning: its own, 5e-5) at the family's default batch, scaled by the square root of batch / default batch (the square-root rule for Adam-type optimizers) |
| learningRateWarmupSteps | 3% of the run's optimizer steps (the common warmup ratio 0.03), at least 1 |
| loraRank | 8 below 1,000 records, 16 below 10,000, else 32: more data can use more adapter capacity |
| loraAlpha | 2 x the rank (the adapter's scale alpha/rank stays 2, the default recipe's) |
| gradientAccumulationSteps | 1: the batch is the step |
| loraDropout, weightDecay | 0: measured, dropout masks cost ~20% of a CPU step for a mild regularization |
| seed, checkpointEveryEpochs | their defaults (42, every epoch) |
| beta (preference tuning) | 0.1, the DPO paper's |
| maxSequenceLength | the longest record's length, within the context (tuneforge.training.lengths), as when it is left out |
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from tuneforge.training.hparams import API_NAMES, FIELDS, Family, Hyperparameters, family_range, parse_hyperparameters

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_STEPS_PER_EPOCH = 16
WARMUP_RATIO = 0.03


@dataclass(frozen=True)
class DataFacts:
    """What the job knows once it validated its data."""

    records: int  # training records (pre-training: rows of the trainer's length)
    pretraining: bool = False
    preference: bool = False  # records are preference pairs (DPO): its own default learning rate


@dataclass(frozen=True)
class Choice:
    value: int | float | None
    reason: str

    def to_dict(self) -> dict:
        return {"value": self.value, "reason": self.reason}


def choose(hp: Hyperparameters, facts: DataFacts, *, family: Family) -> tuple[Hyperparameters, dict[str, Choice]]:
    """`hp` with its `auto` keys chosen, and each choice with its reason (API names)."""
    if not hp.auto:
        return hp, {}
    auto = set(hp.auto)
    fields = {FIELDS[key] for key in auto}
    choices: dict[str, Choice] = {}
    records = max(facts.records, 1)

    def clamp(key: str, value: float) -> int | float:
        low, high, _ = family_range(family, key)
        bounded = min(max(value, low), high)
        return int(round(bounded)) if key in _INTEGERS else float(bounded)

    values = {}
    if "batch_size" in fields:
        _, _, default = family_range(family, "batchSize")
        batch = clamp("batchSize", min(default, records // MIN_STEPS_PER_EPOCH))
        values["batch_size"] = batch
        choices["batchSize"] = Choice(batch, f"{records} records: the largest batch up to the default {default} that leaves "
                                             f"{MIN_STEPS_PER_EPOCH} or more steps an epoch")
    batch = values.get("batch_size", hp.batch_size)
    if "epoch_count" in fields:
        if facts.pretraining:
            epochs, why = 1, "continued pre-training reads its documents once, as pre-training does"
        else:
            epochs = TARGET_EPOCHS
            if records * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
                epochs = math.ceil(MIN_TARGET_EXAMPLES / records)
            elif records * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
                epochs = MAX_TARGET_EXAMPLES // records
            why = (f"{records} records: {TARGET_EPOCHS} epochs, adjusted so that {MIN_TARGET_EXAMPLES}-{MAX_TARGET_EXAMPLES} "
                   "examples are seen (OpenAI's rule)")
        epochs = clamp("epochCount", epochs)
        values["epoch_count"] = epochs
        choices["epochCount"] = Choice(epochs, why)
    if "learning_rate" in fields:
        _, _, default_batch = family_range(family, "batchSize")
        customization = "PREFERENCE_TUNING" if facts.preference else "FINE_TUNING"
        base = parse_hyperparameters({"method": hp.method}, family=family, customization=customization).learning_rate
        rate = clamp("learningRate", base * math.sqrt(batch / default_batch))
        values["learning_rate"] = rate
        choices["learningRate"] = Choice(rate, f"{hp.method}'s {base:g} at batch {default_batch}, times sqrt({batch}/{default_batch})")
    if "warmup_steps" in fields:
        epochs = values.get("epoch_count", hp.epoch_count)
        accumulation = values.get("gradient_accumulation_steps", hp.gradient_accumulation_steps)
        steps = math.ceil(math.ceil(records / batch) / accumulation) * epochs
        warmup = clamp("learningRateWarmupSteps", max(1, math.ceil(WARMUP_RATIO * steps)))
        values["warmup_steps"] = warmup
        choices["learningRateWarmupSteps"] = Choice(warmup, f"{WARMUP_RATIO:.0%} of the run's {steps} steps")
    if "lora_rank" in fields:
        rank = 8 if records < 1_000 else 16 if records < 10_000 else 32
        values["lora_rank"] = rank
        choices["loraRank"] = Choice(rank, f"{records} records: rank 8 below 1,000, 16 below 10,000, else 32")
    if "lora_alpha" in fields:
        alpha = 2 * values.get("lora_rank", hp.lora_rank)
        values["lora_alpha"] = alpha
        choices["loraAlpha"] = Choice(alpha, "twice the rank: the adapter's scale alpha/rank stays 2")
    for field, reason in _FIXED.items():
        if field in fields:
            values[field] = getattr(Hyperparameters(), field)
            choices[API_NAMES[field]] = Choice(values[field], reason)
    return replace(hp, **values, auto=()), choices


_INTEGERS = {"epochCount", "batchSize", "learningRateWarmupSteps", "loraRank", "loraAlpha", "gradientAccumulationSteps",
             "seed", "checkpointEveryEpochs", "maxSequenceLength"}
_FIXED = {
    "gradient_accumulation_steps": "1: the batch is the step",
    "lora_dropout": "0: dropout masks cost ~20% of a CPU step for a mild regularization (measured)",
    "weight_decay": "0: the default recipe's",
    "seed": "the default seed",
    "checkpoint_every_epochs": "every epoch",
    "max_sequence_length": "the longest record's length, within the model's context (as when it is left out)",
    "beta": "0.1, the DPO paper's",
}
