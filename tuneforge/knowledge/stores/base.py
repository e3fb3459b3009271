"""The vector store interface shared by ingestion (writes) and retrieval (reads).

No embedding code lives here: vectors arrive as float32 numpy arrays, L2-normalized by the caller. Stores are
domain code (no HTTP). Implementations: `SqliteStore` (embedded default), `PgVectorStore`, `RedisStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Union

import numpy

if TYPE_CHECKING:
    from tuneforge.knowledge.filters import Filter

MetadataValue = Union[str, int, float, bool, list[str]]


def _empty_vector() -> numpy.ndarray:
    return numpy.empty(0, dtype=numpy.float32)


@dataclass(frozen=True)
class StoredChunk:
    chunk_id: str  # stable id, unique within a knowledge base (e.g. sha1 of document_id + index)
    document_id: str  # the source document's URI, the unit of replace/delete
    text: str  # the text searched (child text for HIERARCHICAL)
    content: str  # the text returned to callers (the parent for HIERARCHICAL, else == text)
    metadata: dict[str, MetadataValue]  # Bedrock x-amz-bedrock-kb-* keys + sidecar attributes
    vector: numpy.ndarray = field(default_factory=_empty_vector)  # float32 (dimension,); empty in hits


@dataclass(frozen=True)
class Hit:
    chunk: StoredChunk  # vector may be empty in hits
    score: float  # higher is better; cosine similarity for vectors, BM25-derived for keywords


class VectorStore(Protocol):
    dimension: int

    def open(self) -> None:
        """Create tables/indexes if missing; raise Unavailable (actionable) if the backend cannot do vector search."""
        ...

    def replace_document(self, document_id: str, chunks: Sequence[StoredChunk]) -> None:
        """Atomic: afterwards exactly these chunks for the document; on failure the previous chunks stay."""
        ...

    def delete_document(self, document_id: str) -> None: ...

    def document_ids(self) -> set[str]: ...

    def count(self) -> int: ...

    def search(self, vector: numpy.ndarray, *, k: int, filter: Filter | None = None) -> list[Hit]: ...

    def keyword_search(self, query: str, *, k: int, filter: Filter | None = None) -> list[Hit]: ...

    def drop(self) -> None:
        """Remove everything of this knowledge base."""
        ...

    def close(self) -> None: ...


def checked_vectors(document_id: str, chunks: Sequence[StoredChunk], dimension: int) -> list[numpy.ndarray]:
    """Validate chunks before any write (every store calls this) and return their vectors as float32.

    Raises InvalidInput naming `chunks[i].<field>`: a chunk of another document, a repeated chunk id, or a vector
    of the wrong shape or with NaN/inf.
    """
    from tuneforge.errors import InvalidInput

    if not document_id:
        raise InvalidInput("document_id is empty; pass the source document's URI.", field="document_id")
    seen: set[str] = set()
    vectors = []
    for i, chunk in enumerate(chunks):
        if chunk.document_id != document_id:
            raise InvalidInput(
                f"chunks[{i}] belongs to document {chunk.document_id!r}, not {document_id!r}; "
                "replace_document takes the chunks of one document.",
                field=f"chunks[{i}].document_id",
            )
        if not chunk.chunk_id:
            raise InvalidInput(f"chunks[{i}] has an empty chunk_id.", field=f"chunks[{i}].chunk_id")
        if chunk.chunk_id in seen:
            raise InvalidInput(
                f"chunk id {chunk.chunk_id!r} appears twice in the chunks of {document_id!r}; ids must be unique.",
                field=f"chunks[{i}].chunk_id",
            )
        seen.add(chunk.chunk_id)
        _check_metadata(chunk.metadata, f"chunks[{i}].metadata")
        vector = numpy.asarray(chunk.vector, dtype=numpy.float32)
        if vector.shape != (dimension,):
            raise InvalidInput(
                f"chunks[{i}].vector has shape {vector.shape}; this knowledge base stores vectors of "
                f"dimension {dimension} (shape ({dimension},)).",
                field=f"chunks[{i}].vector",
            )
        if not numpy.isfinite(vector).all():
            raise InvalidInput(f"chunks[{i}].vector contains NaN or infinity.", field=f"chunks[{i}].vector")
        vectors.append(vector)
    return vectors


def _check_metadata(metadata: object, field: str) -> None:
    from tuneforge.errors import InvalidInput

    if not isinstance(metadata, dict):
        raise InvalidInput(f"{field} must be a dict, got {type(metadata).__name__}.", field=field)
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            raise InvalidInput(f"{field} has a key {key!r}; keys are non-empty strings.", field=field)
        scalar = isinstance(value, (str, bool)) or (
            isinstance(value, (int, float)) and numpy.isfinite(value)  # JSON has no NaN/inf
        )
        strings = isinstance(value, list) and all(isinstance(member, str) for member in value)
        if not (scalar or strings):
            raise InvalidInput(
                f"{field}[{key!r}] is {value!r}; metadata values are strings, finite numbers, booleans or "
                "lists of strings.",
                field=f"{field}.{key}",
            )


def checked_query(vector: numpy.ndarray, dimension: int, k: int) -> numpy.ndarray:
    """Validate a search request's vector and k; returns the vector as float32."""
    from tuneforge.errors import InvalidInput

    if k < 1:
        raise InvalidInput(f"k must be at least 1, got {k}.", field="k")
    query = numpy.asarray(vector, dtype=numpy.float32)
    if query.shape != (dimension,):
        raise InvalidInput(
            f"the query vector has shape {query.shape}; this knowledge base stores vectors of dimension {dimension}.",
            field="vector",
        )
    if not numpy.isfinite(query).all():
        raise InvalidInput("the query vector contains NaN or infinity.", field="vector")
    return query
