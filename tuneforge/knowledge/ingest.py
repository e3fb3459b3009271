"""Incremental sync of one data source into its knowledge base's vector store.

    result = sync(ds, store=store, sessions=sessions, chunker=chunker, embed=worker.embed,
                  token_limit=facts.chunk_token_limit, on_progress=report, should_stop=lambda: False)

List the location; pair each document with its sidecar `<file>.metadata.json`; compare the SHA-256 of both
with what the last sync recorded (table kb_documents). Only new or changed documents are parsed, chunked and
embedded; a document whose sidecar alone changed is re-indexed too (its chunks carry the metadata).
Documents gone from the location lose their chunks. A document that fails (unreadable, unsupported, too long
for NONE chunking, bad sidecar) is counted in numberOfDocumentsFailed with its reason and keeps the chunks
of its last good version. Statistics are Bedrock's IngestionJobStatistics.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from tuneforge import storage
from tuneforge.db import session_scope
from tuneforge.db.tables import DataSourceRow, KbDocumentRow
from tuneforge.documents.chunking import Chunk, Chunker
from tuneforge.documents.document import DocumentError
from tuneforge.documents.parsing import SIDECAR_SUFFIX, load_sidecar, parse_document
from tuneforge.errors import TuneforgeError
from tuneforge.knowledge.stores.base import StoredChunk, VectorStore

SOURCE_URI = "x-amz-bedrock-kb-source-uri"
CHUNK_ID = "x-amz-bedrock-kb-chunk-id"
DATA_SOURCE_ID = "x-amz-bedrock-kb-data-source-id"
PAGE_NUMBER = "x-amz-bedrock-kb-document-page-number"

Embed = Callable[[list[str]], np.ndarray]


@dataclass
class SyncResult:
    statistics: dict[str, int]
    failure_reasons: list[str] = field(default_factory=list)


class SyncStopped(Exception):
    """should_stop() said so between two documents; what was indexed so far stays (args[0]: the SyncResult)."""


def chunk_id(document_uri: str, index: int) -> str:
    """Stable across syncs of the same document version, unique within a knowledge base."""
    return hashlib.sha1(f"{document_uri}#{index}".encode()).hexdigest()


def stored_chunks(uri: str, ds_id: str, chunks: list[Chunk], vectors: np.ndarray, sidecar: dict) -> list[StoredChunk]:
    out = []
    for chunk, vector in zip(chunks, vectors, strict=True):
        cid = chunk_id(uri, chunk.chunk_index)
        metadata = {**sidecar, SOURCE_URI: uri, CHUNK_ID: cid, DATA_SOURCE_ID: ds_id}
        if chunk.page_number is not None:
            metadata[PAGE_NUMBER] = chunk.page_number
        out.append(StoredChunk(cid, uri, chunk.text, chunk.parent_text or chunk.text, metadata, vector))
    return out


def sync(
    ds: DataSourceRow, *, store: VectorStore, sessions: sessionmaker[Session], chunker: Chunker, embed: Embed,
    token_limit: int, on_progress: Callable[[dict, SyncResult], None] = lambda _p, _r: None, should_stop: Callable[[], bool] = lambda: False,
) -> SyncResult:
    stats = {
        "numberOfDocumentsScanned": 0, "numberOfMetadataDocumentsScanned": 0, "numberOfNewDocumentsIndexed": 0,
        "numberOfModifiedDocumentsIndexed": 0, "numberOfMetadataDocumentsModified": 0, "numberOfDocumentsDeleted": 0,
        "numberOfDocumentsFailed": 0, "numberOfDocumentsSkipped": 0,
    }
    result = SyncResult(stats)
    on_progress({"phase": "listing", "location": ds.location_uri}, result)
    listed = {info.uri: info for info in storage.list_objects(ds.location_uri)}
    sidecars = {uri.removesuffix(SIDECAR_SUFFIX) for uri in listed if uri.endswith(SIDECAR_SUFFIX)}
    documents = sorted(uri for uri in listed if not uri.endswith(SIDECAR_SUFFIX))
    stats["numberOfDocumentsScanned"] = len(documents)
    stats["numberOfMetadataDocumentsScanned"] = len(sidecars)
    with sessions() as session:
        known = {row.uri: row for row in session.scalars(select(KbDocumentRow).where(KbDocumentRow.data_source_id == ds.data_source_id))}

    for done, uri in enumerate(documents):
        if should_stop():
            raise SyncStopped(result)
        on_progress({"phase": "indexing", "documentsDone": done, "documentsTotal": len(documents), "document": uri}, result)
        try:
            data = storage.read_bytes(uri)
            content_hash = hashlib.sha256(data).hexdigest()
            sidecar_data = storage.read_bytes(uri + SIDECAR_SUFFIX) if uri in sidecars else None
            metadata_hash = hashlib.sha256(sidecar_data).hexdigest() if sidecar_data is not None else None
            previous = known.get(uri)
            if previous is not None and previous.content_sha256 == content_hash and previous.metadata_sha256 == metadata_hash:
                continue  # unchanged: its chunks are current
            try:
                sidecar = load_sidecar(sidecar_data) if sidecar_data is not None else {}
            except DocumentError as exc:
                raise DocumentError(exc.reason, document=uri + SIDECAR_SUFFIX) from None
            chunks = chunker.chunk(parse_document(uri, data))
            too_long = [c for c in chunks if c.token_count > token_limit]
            if too_long:
                raise DocumentError(
                    f"a chunk of {too_long[0].token_count} tokens is longer than the {token_limit} the embedding model reads; "
                    "choose a chunking strategy (FIXED_SIZE, HIERARCHICAL, SEMANTIC) instead of NONE", document=uri)
            vectors = embed([c.text for c in chunks]) if chunks else np.zeros((0, store.dimension), dtype=np.float32)
            store.replace_document(uri, stored_chunks(uri, ds.data_source_id, chunks, vectors, sidecar))
        except TuneforgeError as exc:  # this document failed; its previous chunks stay, the sync goes on
            stats["numberOfDocumentsFailed"] += 1
            reason = exc.message if isinstance(exc, DocumentError) and exc.document else f"{uri}: {exc.message}"
            result.failure_reasons.append(reason)
            continue
        if previous is None:
            stats["numberOfNewDocumentsIndexed"] += 1
        elif previous.content_sha256 == content_hash:
            stats["numberOfMetadataDocumentsModified"] += 1
        else:
            stats["numberOfModifiedDocumentsIndexed"] += 1
        with session_scope(sessions) as session:
            session.merge(KbDocumentRow(data_source_id=ds.data_source_id, uri=uri, knowledge_base_id=ds.knowledge_base_id,
                                        content_sha256=content_hash, metadata_sha256=metadata_hash, chunk_count=len(chunks)))

    gone = sorted(set(known) - set(documents))
    on_progress({"phase": "deleting", "documentsDone": len(documents), "documentsTotal": len(documents), "deleting": len(gone)}, result)
    for uri in gone:
        store.delete_document(uri)
        with session_scope(sessions) as session:
            session.execute(delete(KbDocumentRow).where(KbDocumentRow.data_source_id == ds.data_source_id, KbDocumentRow.uri == uri))
        stats["numberOfDocumentsDeleted"] += 1
    on_progress({"phase": "complete", "documentsDone": len(documents), "documentsTotal": len(documents)}, result)
    return result


def data_source_chunker(chunking: dict | None, *, tokenizer, token_limit: int, embed: Embed) -> Chunker:
    """The data source's chunker, counting tokens with the embedding model's tokenizer. Default chunking
    (no configuration; Bedrock's ~300 tokens) is capped at what the embedding model reads."""
    from tuneforge.documents.chunking import (
        DEFAULT_MAX_TOKENS,
        DEFAULT_OVERLAP_PERCENTAGE,
        FixedSizeChunker,
        chunker_from_config,
        token_counter,
    )

    if chunking is None:
        size = min(DEFAULT_MAX_TOKENS, token_limit)
        return FixedSizeChunker(size, size * DEFAULT_OVERLAP_PERCENTAGE // 100, token_counter(tokenizer=tokenizer))
    return chunker_from_config(chunking, tokenizer=tokenizer, embed=embed)
