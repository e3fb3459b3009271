"""Retrieve: Bedrock's vectorSearchConfiguration over a knowledge base's store, reranked when asked, in pages.

    retriever = Retriever(kbs, embedder_for=lambda model_id: pool_worker(model_id).embed, reranker=reranker)
    configuration = retrieval_configuration({"vectorSearchConfiguration": {"numberOfResults": 5,   # tuneforge.wire
        "overrideSearchType": "HYBRID", "filter": {"equals": {"key": "title", "value": "15"}}}})
    page = retriever.retrieve(kb_id, "who registers brokers?", configuration)      # .results, .next_token
    more = retriever.retrieve(kb_id, "who registers brokers?", configuration, next_token=page.next_token)

SEMANTIC ranks chunks by cosine similarity to the query's embedding. HYBRID (`hybrid_search`) also runs a
BM25 keyword search and fuses both rankings by reciprocal rank fusion (score = sum over rankings of
1 / (RRF_K + rank)), each ranking `hybrid_depth(numberOfResults)` deep: at least HYBRID_DEPTH. Depth matters
because with RRF_K = 60 a chunk's rank 80 in one ranking still adds half of what rank 1 adds: fusing only 4 x
numberOfResults candidates dropped exactly the chunks both signals rank fairly well, and HYBRID lost to a plain
RRF of the same two rankings. Without overrideSearchType: SEMANTIC (what Bedrock does for vector stores
without a text index). Filters apply inside the store before top-k. Each result is
Bedrock's KnowledgeBaseRetrievalResult: content.text (the parent chunk for HIERARCHICAL), location (S3, or
CUSTOM with the file's URI for local folders), score (cosine, the fused RRF score, or the reranker's), metadata.

Reranking (rerankingConfiguration, tuneforge.knowledge.rerank): the search's numberOfResults candidates are
reread by the reranker with the query, and the numberOfRerankedResults best of them (all by default) come back
with the reranker's relevance score. numberOfResults is how many the reranker reads, numberOfRerankedResults how
many it keeps.

Pages (nextToken): a response carries numberOfResults results (numberOfRerankedResults with a reranker) and a
nextToken when the ranking goes on; the same request with that token continues it. The ranking a request pages
through: SEMANTIC, every chunk by cosine (ties by chunk id); HYBRID, the fusion of the two rankings at the depth
of the first page (`hybrid_depth(numberOfResults)`, at least 100 each: deeper fusion would rescore the chunks
already served); reranked, the numberOfResults candidates in the reranker's order. The token holds where the
last page ended and its last chunk: the next page starts after that chunk wherever it now ranks, so chunks
ingested or deleted between two calls neither repeat a result nor skip one still ranked below (SEMANTIC looks for
that chunk a page deeper than where it was; moved further, or deleted, the page starts where it was). A token is
bound to its request (knowledge base, query, configuration): with another, or altered, it is a
ValidationException.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tuneforge.errors import InvalidInput, Unavailable
from tuneforge.knowledge.filters import Filter
from tuneforge.knowledge.ingest import SOURCE_URI
from tuneforge.knowledge.requests import RetrievalConfiguration, SearchType
from tuneforge.knowledge.rerank import Reranker
from tuneforge.knowledge.stores.base import Hit, VectorStore

RRF_K = 60  # the constant of Cormack et al. (2009); dampens the weight of the very first ranks
HYBRID_CANDIDATES = 4  # each ranking fused is at least this many times numberOfResults deep ...
HYBRID_DEPTH = 100  # ... and at least this deep (see the docstring; bench/retrieval.py measures it)
MAX_QUERY_CHARS = 20_000
TOKEN_VERSION = 1

Embed = Callable[[list[str]], np.ndarray]


def location(uri: str) -> dict:
    if uri.startswith("s3://"):
        return {"type": "S3", "s3Location": {"uri": uri}}
    return {"type": "CUSTOM", "customDocumentLocation": {"id": uri}}


def result_of(hit: Hit) -> dict:
    chunk = hit.chunk
    uri = str(chunk.metadata.get(SOURCE_URI, chunk.document_id))
    return {"content": {"text": chunk.content, "type": "TEXT"}, "location": location(uri), "score": float(hit.score),
            "metadata": dict(chunk.metadata)}


def hybrid_depth(k: int) -> int:
    """How deep each ranking of a HYBRID search for k results is."""
    return max(HYBRID_DEPTH, k * HYBRID_CANDIDATES)


def reciprocal_rank_fusion(rankings: list[list[Hit]], *, k: int) -> list[Hit]:
    """The top k of RRF over `rankings` (best first each); equal scores go to the chunk with the better single
    rank, then to the earlier ranking, so ties follow the evidence rather than chunk ids."""
    scores: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}  # chunk id -> (its best rank, the index of that ranking)
    chunks = {}
    for index, ranking in enumerate(rankings):
        seen: set[str] = set()
        for rank, hit in enumerate(ranking, start=1):
            cid = hit.chunk.chunk_id
            if cid in seen:
                continue  # a chunk twice in one ranking counts once, at its better rank
            seen.add(cid)
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (RRF_K + rank)
            best[cid] = min(best.get(cid, (rank, index)), (rank, index))
            chunks.setdefault(cid, hit.chunk)
    ordered = sorted(scores, key=lambda cid: (-scores[cid], best[cid], cid))[:k]
    return [Hit(chunks[cid], scores[cid]) for cid in ordered]


def hybrid_search(store: VectorStore, vector: np.ndarray, text: str, *, k: int,
                  filter: Filter | None = None) -> list[Hit]:
    """HYBRID: the vector and the keyword ranking, each `hybrid_depth(k)` deep, fused by RRF."""
    depth = hybrid_depth(k)
    return reciprocal_rank_fusion([store.search(vector, k=depth, filter=filter),
                                   store.keyword_search(text, k=depth, filter=filter)], k=k)


@dataclass(frozen=True)
class RetrievalPage:
    hits: list[Hit]
    next_token: str | None

    @property
    def results(self) -> list[dict]:
        return [result_of(hit) for hit in self.hits]


@dataclass(frozen=True)
class _Cursor:
    offset: int  # results served before the next page
    anchor: str  # the chunk id of the last of them


def _fingerprint(kb_id: str, text: str, configuration: RetrievalConfiguration) -> str:
    # repr of frozen dataclasses of plain values (the filter's too): the same request gives the same text
    return hashlib.sha256(json.dumps([kb_id, text, repr(configuration)]).encode()).hexdigest()[:16]


def _encode_token(fingerprint: str, cursor: _Cursor) -> str:
    body = json.dumps({"v": TOKEN_VERSION, "f": fingerprint, "o": cursor.offset, "a": cursor.anchor}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def _decode_token(token: Any, fingerprint: str) -> _Cursor:
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if body.get("v") == TOKEN_VERSION and isinstance(body.get("o"), int) and body["o"] > 0 and isinstance(body.get("a"), str):
            if body.get("f") != fingerprint:
                raise InvalidInput("nextToken was issued for another request: send it with the same knowledge base, query "
                                   "and retrievalConfiguration as the page it came with", field="nextToken")
            return _Cursor(body["o"], body["a"])
    except (TypeError, ValueError, AttributeError, binascii.Error, UnicodeDecodeError):
        pass
    raise InvalidInput("nextToken is not one this server issued: pass the nextToken of the previous page", field="nextToken")


class Retriever:
    """Keeps each knowledge base's store open between requests (stores cache their vectors)."""

    def __init__(self, kbs, *, embedder_for: Callable[[str], Embed], reranker: Reranker | None = None) -> None:
        self.kbs = kbs
        self.embedder_for = embedder_for
        self.reranker = reranker
        self._stores: dict[str, Any] = {}
        self._lock = threading.Lock()

    def store(self, kb_id: str):
        kb = self.kbs.get_knowledge_base(kb_id)
        with self._lock:
            store = self._stores.get(kb_id)
            if store is None:
                store = self._stores[kb_id] = self.kbs.open_store(kb)
        return kb, store

    def retrieve(self, kb_id: str, text: str, configuration: RetrievalConfiguration = RetrievalConfiguration(), *,
                 next_token: str | None = None) -> RetrievalPage:
        """One page of results (the first, or the one after `next_token`'s)."""
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_QUERY_CHARS:
            raise InvalidInput(f"retrievalQuery.text must be 1-{MAX_QUERY_CHARS:,} characters", field="retrievalQuery.text")
        fingerprint = _fingerprint(kb_id, text, configuration)
        cursor = _decode_token(next_token, fingerprint) if next_token is not None else None
        size = configuration.page_size
        ranking = self._ranking(kb_id, text, configuration, depth=(cursor.offset if cursor else 0) + 2 * size + 1)
        start = 0
        if cursor is not None:
            at = next((i for i, hit in enumerate(ranking) if hit.chunk.chunk_id == cursor.anchor), None)
            start = at + 1 if at is not None else cursor.offset  # the anchor left the ranking: its place then
        hits = ranking[start:start + size]
        more = bool(hits) and len(ranking) > start + size
        token = _encode_token(fingerprint, _Cursor(start + len(hits), hits[-1].chunk.chunk_id)) if more else None
        return RetrievalPage(hits, token)

    def hits(self, kb_id: str, text: str, configuration: RetrievalConfiguration = RetrievalConfiguration()) -> list[Hit]:
        """The first page's hits (what RetrieveAndGenerate reads)."""
        return self.retrieve(kb_id, text, configuration).hits

    def _ranking(self, kb_id: str, text: str, configuration: RetrievalConfiguration, *, depth: int) -> list[Hit]:
        """The ranking pages are cut from (see the module docstring), at least `depth` deep where it goes on."""
        reranking = configuration.reranking
        if reranking is not None and self.reranker is None:
            raise Unavailable("this retriever has no reranker worker: rerankingConfiguration needs the server "
                              "(bedrock-agent-runtime Retrieve)", field=reranking.model_field)
        if reranking is not None:  # refuse a model that is no reranker before any search
            self.reranker.scorer_for(reranking.model, reranking.model_field)
        kb, store = self.store(kb_id)
        vector = self.embedder_for(kb.embedding_model_id)([text])[0]
        k, where = configuration.number_of_results, configuration.filter
        if reranking is not None:
            first = (store.search(vector, k=k, filter=where) if configuration.search_type is SearchType.SEMANTIC
                     else hybrid_search(store, vector, text, k=k, filter=where))
            return self.reranker.rerank_hits(text, first, reranking)
        if configuration.search_type is SearchType.HYBRID:
            d = hybrid_depth(k)
            return reciprocal_rank_fusion([store.search(vector, k=d, filter=where), store.keyword_search(text, k=d, filter=where)],
                                          k=2 * d)
        return sorted(store.search(vector, k=depth, filter=where), key=lambda hit: (-hit.score, hit.chunk.chunk_id))

    def forget(self, kb_id: str) -> None:
        """Close a deleted knowledge base's store."""
        with self._lock:
            store = self._stores.pop(kb_id, None)
        if store is not None:
            store.close()

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()
