"""What makes a directory a usable Hugging Face checkpoint, checked without importing torch.

A checkpoint directory holds `config.json`, weights (`*.safetensors` or `pytorch_model*.bin`) and a
tokenizer (`tokenizer.json` or `tokenizer.model` + `tokenizer_config.json`). Materialization writes a
`.tuneforge-complete` marker last, so a half-written directory is never taken for a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from tuneforge.errors import InvalidInput, NotFound

COMPLETE_MARKER = ".tuneforge-complete"


def check_checkpoint_dir(path: Path, *, what: str = "model directory") -> dict:
    """Validate `path` as a causal-LM checkpoint and return its parsed config.json.

    Collects every problem before raising, so one run of `tuneforge models add` tells the user all of it.
    """
    if not path.exists():
        raise NotFound(f"{what} {str(path)!r} does not exist: pass a directory saved with save_pretrained()")
    if not path.is_dir():
        raise InvalidInput(f"{what} {str(path)!r} is a file, not a directory: pass the directory that holds config.json")
    problems: list[str] = []
    config: dict = {}
    config_file = path / "config.json"
    if not config_file.is_file():
        problems.append("config.json is missing")
    else:
        try:
            config = json.loads(config_file.read_text(encoding="utf-8"))
            if not isinstance(config, dict) or "model_type" not in config:
                problems.append("config.json has no 'model_type'")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"config.json is not valid JSON ({exc})")
    if not (any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))):
        problems.append("no weights (*.safetensors or pytorch_model*.bin)")
    if not ((path / "tokenizer.json").is_file() or (path / "tokenizer.model").is_file()):
        problems.append("no tokenizer (tokenizer.json or tokenizer.model)")
    if problems:
        raise InvalidInput(
            f"{what} {str(path)!r} is not a usable checkpoint: " + "; ".join(problems)
            + ". Save the model and its tokenizer with save_pretrained() into one directory.",
        )
    return config


def context_length(config: dict) -> int | None:
    """The model's context window, from the usual config.json keys."""
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_cross_encoder_dir(path: Path) -> dict:
    """Validate `path` as a cross-encoder (what sentence-transformers' CrossEncoder loads: a sequence-classification
    checkpoint with one output, the relevance logit) and return its config.json."""
    config = check_checkpoint_dir(path, what="cross-encoder directory")
    architectures = config.get("architectures") or []
    labels = len(config["id2label"]) if isinstance(config.get("id2label"), dict) else config.get("num_labels", 2)
    if not any(str(name).endswith("ForSequenceClassification") for name in architectures) or labels != 1:
        raise InvalidInput(
            f"{str(path)!r} is not a cross-encoder: a reranker is a *ForSequenceClassification checkpoint with one label "
            f"(architectures {architectures}, {labels} labels); e.g. cross-encoder/ms-marco-MiniLM-L6-v2", field="source",
        )
    return config
