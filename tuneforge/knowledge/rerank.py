"""Reranking: Bedrock's Rerank, and the rerankingConfiguration of Retrieve and RetrieveAndGenerate.

    reranker = Reranker(scorer_for=lambda model, field: pool_worker(reranker_spec(catalog, model, field=field)).rerank)
    ranked = reranker.rerank(rerank_request(params))         # [Ranked(index, score)], best first
    hits = reranker.rerank_hits("who registers?", candidates, settings)   # the candidates reordered, rescored

A reranker is a cross-encoder registered in the catalog (output modality RERANK; `tuneforge models add ID PATH
--reranker`), run in a worker process by sentence-transformers' CrossEncoder: each (query, passage) pair gets a
relevance score (a sigmoid of the model's logit), and the passages are sorted by it, ties by their original order.
`scorer_for(model, field)` raises InvalidInput naming `field` when the model is not a reranker.

What the reranker reads of a retrieved chunk (`reranker_text`): its content (the parent for HIERARCHICAL), then,
with a metadataConfiguration, one "key: value" line per chosen metadata field (lists joined by ", "): ALL is
every field of the chunk but the opaque ids tuneforge adds (chunk id, data source id), in key order; SELECTIVE
is fieldsToInclude (in that order, those the chunk has) or ALL less fieldsToExclude. Without a
metadataConfiguration, the content alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tuneforge.knowledge.ingest import CHUNK_ID, DATA_SOURCE_ID
from tuneforge.knowledge.requests import MetadataSelection, RerankingSettings, RerankRequest
from tuneforge.knowledge.stores.base import Hit, StoredChunk

Score = Callable[[str, list[str]], list[float]]  # (query, passages) -> one relevance score per passage
OPAQUE_KEYS = (CHUNK_ID, DATA_SOURCE_ID)  # ids carry nothing a reranker could weigh


@dataclass(frozen=True)
class Ranked:
    index: int  # the source's position in the request
    score: float


def reranker_text(chunk: StoredChunk, settings: RerankingSettings) -> str:
    if settings.metadata is None:
        return chunk.content
    if settings.metadata is MetadataSelection.SELECTIVE and settings.fields_to_include is not None:
        keys = [k for k in settings.fields_to_include if k in chunk.metadata]
    else:
        keys = sorted(k for k in chunk.metadata if k not in OPAQUE_KEYS and k not in settings.fields_to_exclude)
    lines = [f"{key}: {_value(chunk.metadata[key])}" for key in keys]
    return "\n\n".join([chunk.content, "\n".join(lines)]) if lines else chunk.content


def _value(value) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def ordered(scores: list[float]) -> list[int]:
    """Positions by score, best first; equal scores keep their original order."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


class Reranker:
    def __init__(self, scorer_for: Callable[[str, str], Score]) -> None:
        self.scorer_for = scorer_for

    def rerank(self, request: RerankRequest) -> list[Ranked]:
        """Bedrock's Rerank: the sources best first, numberOfResults of them (all by default)."""
        score = self.scorer_for(request.model, request.MODEL_FIELD)
        scores = score(request.query, [source.text for source in request.sources])
        order = ordered(scores)[: request.number_of_results or len(scores)]
        return [Ranked(i, scores[i]) for i in order]

    def rerank_hits(self, query: str, hits: list[Hit], settings: RerankingSettings) -> list[Hit]:
        """`hits` reordered by the reranker, each with its relevance score (all of them: the caller pages)."""
        score = self.scorer_for(settings.model, settings.model_field)  # checks the model even with no hits
        if not hits:
            return []
        scores = score(query, [reranker_text(hit.chunk, settings) for hit in hits])
        return [Hit(hits[i].chunk, scores[i]) for i in ordered(scores)]
