"""SqliteStore: the embedded default vector store, one SQLite file per knowledge base, nothing to set up.

    store = SqliteStore(data_dir / "kb" / f"{kb_id}.sqlite", dimension=384, name=kb_id)
    store.open()

Layout: `chunks` (text, content, metadata as JSON, vector as a little-endian float32 blob), an FTS5 table
`chunks_fts` (porter stemming) sharing chunks' rowids for BM25 keyword search, and `store_info` (dimension).

Vector search is exact: the vectors are loaded once into a normalized numpy matrix and scored with one
matrix-vector product (cosine similarity). The matrix is rebuilt after this store's writes and after any other
connection's commit (`PRAGMA data_version`), so an ingestion process and a serving process can share the file.
Filters run on the cached metadata with `Filter.matches` before top-k, so filtered results are the true top-k
(the admitted rows of the last 64 filters are remembered until the next write).

Limits: the matrix holds every vector in memory (100k chunks x 384 dims = 150 MB); the file is for one host
(WAL mode, several processes fine, no network file systems). Keyword search ORs the query's terms
(`keywords.query_terms`: stopwords removed; FTS5 syntax in the query is not interpreted); scores are -bm25(),
higher is better.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from tuneforge.errors import Conflict, InvalidInput, Unavailable
from tuneforge.knowledge.filters import Filter
from tuneforge.knowledge.stores.base import Hit, StoredChunk, checked_query, checked_vectors
from tuneforge.knowledge.stores.keywords import query_terms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL,
    text TEXT NOT NULL,
    content TEXT NOT NULL,
    metadata TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_document_id ON chunks (document_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5 (text, tokenize = 'porter unicode61');
"""
_BUSY_TIMEOUT_MS = 30_000  # an ingestion transaction of a large document can hold the write lock for seconds
_MASKS_KEPT = 64  # filters remembered per loaded matrix


@dataclass
class _Matrix:
    data_version: int
    rowids: numpy.ndarray  # int64 (n,)
    vectors: numpy.ndarray  # float32 (n, dimension), rows L2-normalized
    metadata: list[dict]
    masks: dict[Filter, numpy.ndarray] = field(default_factory=dict)  # filter -> admitted row indexes

    def admitted(self, flt: Filter) -> numpy.ndarray:
        """Row indexes `flt` admits, remembered per matrix: RAG clients repeat their filters."""
        if flt not in self.masks:
            if len(self.masks) >= _MASKS_KEPT:
                self.masks.pop(next(iter(self.masks)))
            self.masks[flt] = numpy.flatnonzero([flt.matches(metadata) for metadata in self.metadata])
        return self.masks[flt]


class SqliteStore:
    def __init__(self, path: Path | str, dimension: int, name: str) -> None:
        if dimension < 1:
            raise InvalidInput(f"dimension must be at least 1, got {dimension}.", field="dimension")
        self.path = Path(path)
        self.dimension = dimension
        self.name = name
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.RLock()  # one connection shared by the server's threads
        self._matrix: _Matrix | None = None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r}, dimension={self.dimension}, name={self.name!r})"

    # ---- lifecycle

    def open(self) -> None:
        with self._lock:
            if self._connection is not None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
                connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            except (OSError, sqlite3.Error) as exc:
                raise Unavailable(f"cannot open the knowledge-base file {self.path}: {exc}") from exc
            try:
                connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                connection.execute("PRAGMA journal_mode = WAL")
                connection.executescript(_SCHEMA)
                connection.execute(
                    "INSERT OR IGNORE INTO store_info (key, value) VALUES ('dimension', ?)", (str(self.dimension),)
                )
                (stored,) = connection.execute("SELECT value FROM store_info WHERE key = 'dimension'").fetchone()
            except sqlite3.OperationalError as exc:
                connection.close()
                if "fts5" in str(exc):
                    raise Unavailable(
                        f"this Python's SQLite ({sqlite3.sqlite_version}) lacks FTS5; install a Python built "
                        "with a standard SQLite (3.9+ with FTS5), or configure PostgreSQL or Redis storage."
                    ) from exc
                raise Unavailable(f"cannot open the knowledge-base file {self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                connection.close()
                raise Unavailable(f"{self.path} is not a usable SQLite knowledge-base file: {exc}") from exc
            if int(stored) != self.dimension:
                connection.close()
                raise Conflict(
                    f"{self.path} holds vectors of dimension {stored}, not {self.dimension}; re-create the "
                    "knowledge base (or its file) to change the embedding model.",
                    field="dimension",
                )
            self._connection = connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            self._matrix = None

    def drop(self) -> None:
        with self._lock:
            self.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    # ---- writes

    def replace_document(self, document_id: str, chunks: Sequence[StoredChunk]) -> None:
        vectors = checked_vectors(document_id, chunks, self.dimension)
        rows = [
            (
                chunk.chunk_id,
                document_id,
                chunk.text,
                chunk.content,
                json.dumps(chunk.metadata, ensure_ascii=False),
                vector.astype("<f4").tobytes(),
            )
            for chunk, vector in zip(chunks, vectors)
        ]
        with self._lock:
            connection = self._open_connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                self._delete(connection, document_id)
                try:
                    connection.executemany(
                        "INSERT INTO chunks (chunk_id, document_id, text, content, metadata, vector) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                except sqlite3.IntegrityError as exc:
                    raise self._taken(connection, document_id, [row[0] for row in rows]) from exc
                connection.execute(
                    "INSERT INTO chunks_fts (rowid, text) SELECT rowid, text FROM chunks WHERE document_id = ?",
                    (document_id,),
                )
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            self._matrix = None

    def delete_document(self, document_id: str) -> None:
        with self._lock:
            connection = self._open_connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                self._delete(connection, document_id)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            self._matrix = None

    @staticmethod
    def _delete(connection: sqlite3.Connection, document_id: str) -> None:
        connection.execute(
            "DELETE FROM chunks_fts WHERE rowid IN (SELECT rowid FROM chunks WHERE document_id = ?)", (document_id,)
        )
        connection.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))

    @staticmethod
    def _taken(connection: sqlite3.Connection, document_id: str, chunk_ids: list[str]) -> Conflict:
        placeholders = ",".join("?" * len(chunk_ids))
        owner = connection.execute(
            f"SELECT chunk_id, document_id FROM chunks WHERE chunk_id IN ({placeholders}) AND document_id != ?",
            (*chunk_ids, document_id),
        ).fetchone()
        taken = f"chunk id {owner[0]!r} already belongs to document {owner[1]!r}" if owner else "a chunk id is taken"
        return Conflict(f"{taken}; chunk ids must be unique within a knowledge base.", field="chunk_id")

    # ---- reads

    def document_ids(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._open_connection().execute("SELECT DISTINCT document_id FROM chunks")}

    def count(self) -> int:
        with self._lock:
            return self._open_connection().execute("SELECT count(*) FROM chunks").fetchone()[0]

    def search(self, vector: numpy.ndarray, *, k: int, filter: Filter | None = None) -> list[Hit]:
        query = checked_query(vector, self.dimension, k)
        norm = float(numpy.linalg.norm(query))
        if norm == 0.0:
            raise InvalidInput("the query vector is all zeros; cosine similarity is undefined.", field="vector")
        with self._lock:
            connection = self._open_connection()
            matrix = self._load_matrix(connection)
            if filter is None:
                candidates = numpy.arange(len(matrix.rowids))
                scores = matrix.vectors @ (query / norm)  # no fancy indexing: it would copy the whole matrix
            else:
                candidates = matrix.admitted(filter)
                scores = matrix.vectors[candidates] @ (query / norm)
            if len(candidates) == 0:
                return []
            if len(candidates) > k:
                top = numpy.argpartition(-scores, k - 1)[:k]
            else:
                top = numpy.arange(len(candidates))
            top = top[numpy.argsort(-scores[top], kind="stable")]
            ranked = [(int(matrix.rowids[candidates[i]]), float(scores[i])) for i in top]
            return self._hits(connection, ranked)

    def keyword_search(self, query: str, *, k: int, filter: Filter | None = None) -> list[Hit]:
        if k < 1:
            raise InvalidInput(f"k must be at least 1, got {k}.", field="k")
        words = query_terms(query)
        if not words:
            return []
        # each word quoted: the caller's text is never parsed as FTS5 syntax (AND, NEAR, column filters)
        match = " OR ".join('"{}"'.format(word.replace('"', '""')) for word in words)
        with self._lock:
            connection = self._open_connection()
            sql = "SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts)"
            if filter is None:
                ranked = [(rowid, -bm25) for rowid, bm25 in connection.execute(f"{sql} LIMIT ?", (match, k))]
            else:
                matrix = self._load_matrix(connection)
                metadata = dict(zip(matrix.rowids.tolist(), matrix.metadata))
                ranked = []
                for rowid, bm25 in connection.execute(sql, (match,)):  # best first; stop at k that pass
                    if rowid in metadata and filter.matches(metadata[rowid]):
                        ranked.append((rowid, -bm25))
                        if len(ranked) == k:
                            break
            return self._hits(connection, ranked)

    # ---- internals

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise Unavailable(f"{self!r} is not open; call open() first.")
        return self._connection

    def _load_matrix(self, connection: sqlite3.Connection) -> _Matrix:
        (data_version,) = connection.execute("PRAGMA data_version").fetchone()
        if self._matrix is not None and self._matrix.data_version == data_version:
            return self._matrix
        rows = connection.execute("SELECT rowid, metadata, vector FROM chunks ORDER BY rowid").fetchall()
        vectors = numpy.frombuffer(b"".join(row[2] for row in rows), dtype="<f4").reshape(len(rows), self.dimension)
        norms = numpy.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = (vectors / numpy.where(norms == 0, 1, norms)).astype(numpy.float32)
        self._matrix = _Matrix(
            data_version,
            numpy.array([row[0] for row in rows], dtype=numpy.int64),
            vectors,
            [json.loads(row[1]) for row in rows],
        )
        return self._matrix

    @staticmethod
    def _hits(connection: sqlite3.Connection, ranked: list[tuple[int, float]]) -> list[Hit]:
        if not ranked:
            return []
        placeholders = ",".join("?" * len(ranked))
        rows = {
            row[0]: row[1:]
            for row in connection.execute(
                f"SELECT rowid, chunk_id, document_id, text, content, metadata FROM chunks WHERE rowid IN ({placeholders})",
                [rowid for rowid, _ in ranked],
            )
        }
        hits = []
        for rowid, score in ranked:
            if rowid in rows:  # another process may have deleted it since the matrix was loaded
                chunk_id, document_id, text, content, metadata = rows[rowid]
                hits.append(Hit(StoredChunk(chunk_id, document_id, text, content, json.loads(metadata)), score))
        return hits
