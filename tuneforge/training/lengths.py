"""How long a training record may be, and how long the rows the trainer builds are: one rule, no torch.

    limit = record_limit(Customization.FINE_TUNING, context=8192, max_sequence_length=None,
                         base_model_id="meta.llama2-13b-v1", batch_size=1)   # what the validator checks
    max_len = training_length(Customization.FINE_TUNING, context=8192, max_sequence_length=None, longest=1087)

The rule, for a job that does not set maxSequenceLength:
- Fine-tuning trains each record whole: the training length grows from DEFAULT_MAX_LEN to the longest record,
  up to the model's context. Memory stays bounded because a micro-batch is split into forward passes of at most
  TOKENS_PER_FORWARD padded tokens (trainer); only a record longer than the model's context is refused.
- Continued pre-training packs documents into rows of DEFAULT_MAX_LEN (or the context, if shorter); a longer
  document continues in the next row, so no record is refused for its length.
With maxSequenceLength set, fine-tuning records must fit it and pre-training rows are that long.

Where the base model is one of Bedrock's own ids (an alias, e.g. `amazon.titan-text-express-v1`), Bedrock's
documented per-record limits apply as well when they are stricter (docs/bedrock-api.md §2a, from the Amazon
Bedrock user guide's model customization quotas): Titan Text Express 4,096 tokens at batchSize 1 and 2,048 at
larger batches, Titan Text Lite 4,096 at batchSize 1-2 and 2,048 above, Llama 2 its 4,096-token context. Tokens
are counted with the serving model's tokenizer, which is not Bedrock's, so the limit is approximate there.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.errors import InvalidInput

DEFAULT_MAX_LEN = 1024  # fine-tuning's starting length and pre-training's row length when maxSequenceLength is unset
FALLBACK_CONTEXT = 2048  # a config.json without a context length: the usual Llama-style default

_BEDROCK_SOURCE = "Amazon Bedrock user guide, model customization quotas"
# id prefix -> (the largest batchSize that still gets the long limit, long limit, short limit)
_BEDROCK_RECORD_TOKENS = {
    "amazon.titan-text-express": (1, 4096, 2048),
    "amazon.titan-text-lite": (2, 4096, 2048),
    "meta.llama2": (64, 4096, 4096),  # Llama 2's context; figures from older docs, not re-verified
}


@dataclass(frozen=True)
class RecordLimit:
    """The most tokens one record may have (EOS included), what sets that number, and what to do about it."""

    tokens: int
    source: str  # e.g. "the model's context", named in the error
    fix: str


def _kind(kind: object) -> str:
    value = str(getattr(kind, "value", kind))
    if value not in ("FINE_TUNING", "CONTINUED_PRE_TRAINING", "PREFERENCE_TUNING"):
        raise InvalidInput(f"customizationType {value} is not trained by tuneforge: use FINE_TUNING, CONTINUED_PRE_TRAINING "
                           "or PREFERENCE_TUNING", field="customizationType")
    # a preference pair is two fine-tuning sequences (prompt + each answer): the same length rules
    return "FINE_TUNING" if value == "PREFERENCE_TUNING" else value


def bedrock_record_limit(base_model_id: str, batch_size: int) -> RecordLimit | None:
    """Bedrock's documented per-record token limit for one of its own model ids, or None for any other model."""
    model_id = base_model_id.rsplit("/", 1)[-1]
    for prefix, (long_batch, long_limit, short_limit) in _BEDROCK_RECORD_TOKENS.items():
        if model_id.startswith(prefix):
            tokens = long_limit if batch_size <= long_batch else short_limit
            return RecordLimit(
                tokens, f"Amazon Bedrock's limit for {model_id} at batchSize {batch_size} ({_BEDROCK_SOURCE}; counted "
                        "with the serving model's tokenizer)",
                "shorten or split the record" + (f", or use batchSize {long_batch} for up to {long_limit:,} tokens"
                                                 if tokens < long_limit else ""),
            )
    return None


def record_limit(kind: object, *, context: int, max_sequence_length: int | None, base_model_id: str,
                 batch_size: int) -> RecordLimit | None:
    """What the validator checks each record against (the strictest applicable limit), or None for no limit."""
    bedrock = bedrock_record_limit(base_model_id, batch_size)
    own: RecordLimit | None
    if _kind(kind) == "CONTINUED_PRE_TRAINING":
        own = None  # long documents are split into rows; nothing to refuse
    elif max_sequence_length is not None:
        own = RecordLimit(max_sequence_length, "the job's maxSequenceLength",
                          f"shorten the record, or raise maxSequenceLength (up to the model's context of {context:,})")
    else:
        own = RecordLimit(context, "the model's context",
                          "shorten or split the record, set a smaller maxSequenceLength to cut records at that length "
                          "(cut records lose their end), or use a model with a longer context")
    limits = [limit for limit in (own, bedrock) if limit is not None]
    return min(limits, key=lambda limit: limit.tokens, default=None)


def training_length(kind: object, *, context: int, max_sequence_length: int | None, longest: int | None = None) -> int:
    """The trainer's row length: see the module docstring. `longest` is the longest fine-tuning example in tokens."""
    if max_sequence_length is not None:
        if max_sequence_length > context:
            raise InvalidInput(f"hyperParameters.maxSequenceLength: {max_sequence_length} is longer than the model's context "
                               f"of {context}: use at most {context}", field="hyperParameters")
        return max_sequence_length
    if _kind(kind) == "FINE_TUNING" and longest is not None:
        return min(context, max(DEFAULT_MAX_LEN, longest))
    return min(DEFAULT_MAX_LEN, context)
