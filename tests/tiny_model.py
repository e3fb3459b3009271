"""A tiny random-init Llama with a real (trained on the spot) BPE tokenizer and a ChatML chat template.

Saved with save_pretrained and then used through the same code paths as any other model. Built in about
a second, so the whole suite runs without downloading or materializing anything.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "Summarize the simplest and most interesting part of the following conversation.",
    "The guest checks in at the hotel and pays with a credit card. The room is on the fifth floor.",
    "Continued pre-training teaches a model the words and facts of a new domain.",
    "Fine-tuning teaches a model to follow a format: short summaries, polite answers, JSON.",
    "Knowledge bases retrieve passages and answer questions with citations.",
    "Exchange rules describe order types, auctions, market makers and trading halts.",
] * 20


def build_tiny_llama(target: Path, *, vocab_size: int = 512, seed: int = 0, heads: int = 4, kv_heads: int = 2) -> Path:
    """`heads`: 4 make a 16-wide head; vLLM's CPU kernels need 32 or more (heads=2, kv_heads=1)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<unk>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.2,  # wider than the usual 0.02 so a random model's greedy text is not one repeated token
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
