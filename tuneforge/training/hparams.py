"""Bedrock-style hyperparameters (a `dict[str, str]`) parsed once into a typed, frozen `Hyperparameters`.

    parse_hyperparameters({"epochCount": "3", "learningRate": "1e-4"}, family="default")

Every problem is collected and raised together in one `InvalidInput`, one line per key, e.g.
"hyperParameters.epochCount: must be an integer 1-10, got 'abc'". Unknown keys list the allowed ones.

Bedrock's four keys take the ranges and defaults of the base model's family (bedrock-api.md §2a):

| family  | epochCount     | batchSize     | learningRate                          | learningRateWarmupSteps |
|---------|----------------|---------------|---------------------------------------|-------------------------|
| llama2  | 1-10, def 5    | 1 only        | 5e-6-0.1, def 1e-4                    | not accepted (0)        |
| titan   | 1-10, def 5    | 1-64, def 1   | 0-1, def 1e-5                         | 0-250, def 5            |
| default | 1-10, def 1    | 1-64, def 8   | 1e-7-0.1, def 2e-4 LoRA / 2e-5 full   | 0-250, def 5            |

"default" is ours, for small open models such as SmolLM2-135M on a CPU: one epoch, 8 records a step, and the
usual LoRA recipe (rank 16, alpha 32, so the adapter scale alpha/rank is 2, on every linear layer but the LM
head) without LoRA dropout: on CPU, drawing the dropout masks (7 per layer) cost 19% of a step on SmolLM2-135M
(bf16, 135 vs 166 tokens per CPU-second), a lot for its mild regularization. A full fine-tune gets a 10x lower
learning rate, as is usual for updating all weights.

Our keys, the same for every family (defaults in `_OURS`): method lora|full, loraRank, loraAlpha,
loraDropout, loraTargetModules ("all-linear" or comma-separated module names such as q_proj,v_proj),
maxSequenceLength (default: tuneforge.training.lengths decides it), gradientAccumulationSteps, seed, weightDecay, checkpointEveryEpochs.

Preference tuning (customizationType PREFERENCE_TUNING, DPO) also takes `beta` (0.01-1, default 0.1, the DPO
paper's: how far the adapter may move from the base; higher keeps it closer), trains LoRA only (`method` full is
refused: the reference model is the base with the adapter switched off, and a full fine-tune would need a second
frozen copy of the model) and defaults to a learning rate of 5e-5, a quarter of fine-tuning's LoRA rate: DPO's
loss is on summed log-probabilities of whole answers, so its gradients are larger, and it drifts from the reference
quickly (TRL's DPOConfig defaults to 1e-6 for full models; 5e-5 is what moved the tiny test model within a few epochs
without diverging). `beta` is refused for the other customization types.

Any numeric key may be "auto": the job chooses it once it has read its data, by the rules of tuneforge.training.auto,
and records the value and the reason (`tuneforge jobs get`). "auto" on method or loraTargetModules is refused.

Record lengths are not checked here: Titan's per-batch-size token caps and maxSequenceLength against the model's
context are checked when the job validates its data (tuneforge.training.lengths), where the context is known.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

from tuneforge.errors import InvalidInput

Family = Literal["llama2", "titan", "default"]
Method = Literal["lora", "full"]
ALL_LINEAR = "all-linear"  # peft's shorthand: every nn.Linear except the output (LM) head


@dataclass(frozen=True)
class Hyperparameters:
    epoch_count: int = 1
    batch_size: int = 8
    learning_rate: float = 2e-4
    warmup_steps: int = 5
    method: Method = "lora"
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] = (ALL_LINEAR,)
    max_sequence_length: int | None = None  # None: tuneforge.training.lengths.training_length decides
    gradient_accumulation_steps: int = 1
    seed: int = 42
    weight_decay: float = 0.0
    checkpoint_every_epochs: int = 1
    beta: float = 0.1  # DPO's temperature (preference tuning only)
    auto: tuple[str, ...] = ()  # the API names given as "auto": tuneforge.training.auto chooses them once the data is read

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able values (lists for tuples), as saved next to checkpoints and artifacts."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class _Number:
    kind: type[int] | type[float]
    low: float
    high: float
    default: int | float | None  # None: decided later (learningRate by the method, maxSequenceLength by the model)


_FAMILIES: dict[str, dict[str, _Number]] = {
    "llama2": {
        "epochCount": _Number(int, 1, 10, 5),
        "batchSize": _Number(int, 1, 1, 1),
        "learningRate": _Number(float, 5e-6, 0.1, 1e-4),
    },
    "titan": {
        "epochCount": _Number(int, 1, 10, 5),
        "batchSize": _Number(int, 1, 64, 1),
        "learningRate": _Number(float, 0.0, 1.0, 1e-5),
        "learningRateWarmupSteps": _Number(int, 0, 250, 5),
    },
    "default": {
        "epochCount": _Number(int, 1, 10, 1),
        "batchSize": _Number(int, 1, 64, 8),
        "learningRate": _Number(float, 1e-7, 0.1, None),
        "learningRateWarmupSteps": _Number(int, 0, 250, 5),
    },
}

_OURS: dict[str, _Number] = {
    "loraRank": _Number(int, 1, 256, 16),
    "loraAlpha": _Number(int, 1, 1024, 32),
    "loraDropout": _Number(float, 0.0, 0.5, 0.0),  # 0: dropout masks cost ~20% of a CPU step (see module doc)
    "maxSequenceLength": _Number(int, 16, 32768, None),  # 16: room for a prompt, a word and EOS; 32k: beyond any model we serve
    "gradientAccumulationSteps": _Number(int, 1, 64, 1),
    "seed": _Number(int, 0, 2**32 - 1, 42),  # numpy's seed range
    "weightDecay": _Number(float, 0.0, 1.0, 0.0),
    "checkpointEveryEpochs": _Number(int, 1, 10, 1),
}
_PREFERENCE: dict[str, _Number] = {
    "beta": _Number(float, 0.01, 1.0, 0.1),  # 0.1: the DPO paper's; below 0.01 the loss barely anchors to the reference
}
PREFERENCE_TUNING = "PREFERENCE_TUNING"
_CHOICES = {"method": ("lora", "full")}
_MODULES = "loraTargetModules"
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")

_FIELDS = {  # API name -> Hyperparameters field
    "epochCount": "epoch_count", "batchSize": "batch_size", "learningRate": "learning_rate",
    "learningRateWarmupSteps": "warmup_steps", "method": "method", "loraRank": "lora_rank", "loraAlpha": "lora_alpha",
    "loraDropout": "lora_dropout", _MODULES: "lora_target_modules", "maxSequenceLength": "max_sequence_length",
    "gradientAccumulationSteps": "gradient_accumulation_steps", "seed": "seed", "weightDecay": "weight_decay",
    "checkpointEveryEpochs": "checkpoint_every_epochs", "beta": "beta",
}


def family_range(family: Family, key: str) -> tuple[float, float, int | float | None]:
    """(low, high, default) of a numeric key for a family: what an automatic choice must stay within."""
    spec = {**_FAMILIES[family], **_OURS, **_PREFERENCE}[key]
    return spec.low, spec.high, spec.default


API_NAMES = {field: key for key, field in _FIELDS.items()}  # Hyperparameters field -> API name
FIELDS = dict(_FIELDS)  # API name -> Hyperparameters field


def _default_learning_rate(method: str, customization: str = "FINE_TUNING") -> float:
    if customization == PREFERENCE_TUNING:
        return 5e-5  # see the module docstring
    return 2e-4 if method == "lora" else 2e-5


def _parse_number(key: str, raw: str, spec: _Number) -> tuple[int | float | None, str | None]:
    """(value, None) or (None, problem)."""
    noun = "an integer" if spec.kind is int else "a number"
    span = f"{spec.low:g}" if spec.low == spec.high else f"{spec.low:g}-{spec.high:g}"
    problem = f"hyperParameters.{key}: must be {noun} {span}, got {raw!r}"
    try:
        value = spec.kind(raw.strip())
    except (ValueError, AttributeError):
        return None, problem
    if (isinstance(value, float) and not math.isfinite(value)) or not spec.low <= value <= spec.high:
        return None, problem
    return value, None


def _parse_modules(raw: str) -> tuple[tuple[str, ...] | None, str | None]:
    names = tuple(n.strip() for n in raw.split(","))
    if names == (ALL_LINEAR,) or (names and all(_MODULE_NAME.match(n) for n in names)):
        return names, None
    return None, (
        f"hyperParameters.{_MODULES}: must be {ALL_LINEAR!r} or comma-separated module names such as "
        f"'q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj', got {raw!r}"
    )


AUTO = "auto"


def parse_hyperparameters(raw: Mapping[str, str], *, family: Family = "default", customization: str = "FINE_TUNING") -> Hyperparameters:
    """Check every key against the family's table and our own (and, for PREFERENCE_TUNING, beta); raise one
    InvalidInput naming all bad keys.

    A numeric key given as "auto" takes its default here and is listed in `auto`: the job chooses it from the model
    and the data once it has read them (tuneforge.training.auto)."""
    if family not in _FAMILIES:
        raise InvalidInput(f"unknown model family {family!r}: expected one of {', '.join(_FAMILIES)}", field="family")
    preference = customization == PREFERENCE_TUNING
    numbers = {**_FAMILIES[family], **_OURS, **(_PREFERENCE if preference else {})}
    allowed = [*numbers, *_CHOICES, _MODULES]
    problems: list[str] = []
    values: dict[str, object] = {}
    auto: list[str] = []
    for key, value in raw.items():
        if not isinstance(value, str):
            problems.append(f"hyperParameters.{key}: values are strings (as in Bedrock), got {value!r}")
        elif value.strip().lower() == AUTO and key in numbers:
            auto.append(key)
        elif value.strip().lower() == AUTO and (key in _CHOICES or key == _MODULES):
            problems.append(f"hyperParameters.{key}: \"auto\" applies to numeric hyperparameters ({', '.join(numbers)}); "
                            f"give {key} a value or leave it out")
        elif key in numbers:
            parsed, problem = _parse_number(key, value, numbers[key])
            values[key] = parsed
            problems += [problem] if problem else []
        elif key in _CHOICES:
            values[key] = value.strip()
            if value.strip() not in _CHOICES[key]:
                problems.append(f"hyperParameters.{key}: must be one of {', '.join(_CHOICES[key])}, got {value!r}")
        elif key == _MODULES:
            values[key], problem = _parse_modules(value)
            problems += [problem] if problem else []
        elif key in _PREFERENCE:
            problems.append(f"hyperParameters.{key}: applies to preference tuning (customizationType PREFERENCE_TUNING) only")
        else:
            problems.append(f"hyperParameters.{key}: unknown for the {family} family; allowed: {', '.join(sorted(allowed))}")
    if preference and values.get("method") == "full":
        problems.append("hyperParameters.method: preference tuning trains a LoRA adapter (its reference model is the base "
                        "with the adapter switched off, so no second copy is held); use method lora or leave it out")
    if problems:
        raise InvalidInput("invalid hyperparameters:\n" + "\n".join(problems), field="hyperParameters")

    method = str(values.get("method", "lora"))
    resolved: dict[str, object] = {"method": method, "lora_target_modules": values.get(_MODULES, (ALL_LINEAR,))}
    for key, spec in numbers.items():
        default = _default_learning_rate(method, customization) if key == "learningRate" and spec.default is None else spec.default
        resolved[_FIELDS[key]] = values.get(key, default)
    if "learningRateWarmupSteps" not in numbers:  # Llama 2 takes no warmup
        resolved["warmup_steps"] = 0
    resolved["auto"] = tuple(auto)
    return Hyperparameters(**resolved)  # type: ignore[arg-type]  # every field was checked above
