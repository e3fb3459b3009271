"""What ingestion and retrieval need to know about an embedding model, read from its files without torch.

The vectors themselves come from an embedding worker process (tuneforge.inference.worker, task "embed").
A sentence-transformers model reads at most `max_seq_length` word pieces per text, two of them [CLS] and
[SEP]; longer texts are silently truncated by the model, so chunks are kept within `chunk_token_limit`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tuneforge.errors import InvalidInput

SPECIAL_TOKENS = 2  # [CLS] and [SEP] take two of the model's positions


@dataclass(frozen=True)
class EmbeddingModelFacts:
    path: Path
    dimension: int
    max_seq_length: int

    @property
    def chunk_token_limit(self) -> int:
        """The most tokens (counted without special tokens) a chunk may have and still be embedded whole."""
        return self.max_seq_length - SPECIAL_TOKENS

    def tokenizer(self):
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(self.path / "tokenizer.json"))


def embedding_model_facts(path: Path) -> EmbeddingModelFacts:
    """Dimension and token limit of a sentence-transformers directory (modules.json, the pooling layer's
    config, sentence_bert_config.json), or InvalidInput naming what is missing."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        dimension = None
        for module in modules:  # the last module that states a size decides it (Pooling, then Dense if any)
            config = path / module.get("path", "") / "config.json"
            if module.get("path") and config.is_file():
                body = json.loads(config.read_text())
                dimension = (body.get("out_features") or body.get("word_embedding_dimension")
                             or body.get("embedding_dimension") or dimension)
        max_seq_length = _max_seq_length(path)
        if not (path / "tokenizer.json").is_file():
            raise FileNotFoundError(path / "tokenizer.json")
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{str(path)!r} is not a usable sentence-transformers directory ({exc})", field="embeddingModelArn") from None
    if not dimension or not max_seq_length:
        raise InvalidInput(f"{str(path)!r} does not state its embedding dimension and max_seq_length", field="embeddingModelArn")
    return EmbeddingModelFacts(path, int(dimension), int(max_seq_length))


def _max_seq_length(path: Path) -> int | None:
    # sentence-transformers < 6 writes max_seq_length to sentence_bert_config.json; 6 leaves it to the
    # tokenizer's model_max_length, bounded by the transformer's position embeddings (as it loads them)
    bert = path / "sentence_bert_config.json"
    if bert.is_file() and (value := json.loads(bert.read_text()).get("max_seq_length")):
        return int(value)
    limits = []
    for name, key in (("tokenizer_config.json", "model_max_length"), ("config.json", "max_position_embeddings")):
        if (path / name).is_file() and isinstance(value := json.loads((path / name).read_text()).get(key), int):
            limits.append(value)
    return min(limits) if limits else None
