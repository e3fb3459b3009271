"""PgVectorStore: a knowledge base in one PostgreSQL table, vectors searched with pgvector, words with tsvector.

    store = PgVectorStore("postgresql://user:pw@db:5432/rag", "kb_abc123", dimension=384)
    store.open()      # CREATE EXTENSION vector (if missing), the table and its indexes

Needs the pgvector extension (0.5+, for HNSW) on the server; open() raises Unavailable saying how to install it.
Driver: psycopg2 (`pip install 'tuneforge[postgres]'`).

Table `<table>`: chunk_id (primary key), document_id, text, content, metadata JSONB, embedding vector(d), and
tsv, a generated to_tsvector('english', text). Indexes: HNSW (vector_cosine_ops) on embedding, GIN on tsv and
on metadata (jsonb_path_ops: equals, in and listContains become `metadata @> ...` and use it), btree on
document_id.

Search: unfiltered queries walk the HNSW index (approximate; hnsw.ef_search is raised to max(100, 2k), at
most 1000, for recall and so that k rows come back). Filtered queries translate the filter to SQL (below) and
run with index scans off, which makes PostgreSQL rank every admitted row exactly: pgvector 0.6's HNSW filters
*after* the index scan and would return fewer than k rows for a selective filter. Scores are 1 - cosine distance.

Filter translation (semantics of tuneforge.knowledge.filters):
    equals / notEquals            metadata @> {"key": value} / NOT (...)   (JSONB equality: 1 = 1.0, "1" != 1)
    in / notIn                    metadata @> ANY(array of {"key": member}) / NOT (...)
    listContains                  metadata @> {"key": [value]}
    greaterThan ...               CASE jsonb_typeof = 'number' THEN (metadata ->> key)::numeric > value
    startsWith                    jsonb_typeof = 'string' AND starts_with(metadata ->> key, value)
    stringContains                strpos on the string, or on any member of a list
    andAll / orAll                AND / OR

Limits: NUL characters are removed from text, content and metadata (PostgreSQL text cannot hold them).
Keyword search ORs the query's lexemes (to_tsvector('english') of the query, as of the rows, so no query
syntax is interpreted; its stopwords are those of `keywords.query_terms`) and ranks by Okapi BM25 computed in SQL (k1 1.2, b 0.75, the row's distinct lexemes as
its length), the ranking SQLite's FTS5 and RediSearch give; it scores every row that has a query term.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy

from tuneforge.errors import Conflict, InvalidInput, Unavailable
from tuneforge.knowledge.filters import NUMERIC, Comparison, Filter, Logical
from tuneforge.knowledge.stores.base import Hit, StoredChunk, checked_query, checked_vectors
from tuneforge.knowledge.stores.keywords import query_terms

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")  # room for the index-name suffixes within 63 bytes
_BM25_K1, _BM25_B = 1.2, 0.75  # Robertson's defaults, which SQLite FTS5 and RediSearch use too
_STATISTICS_SECONDS = 60.0  # how long BM25's row count and mean length are reused (see _bm25_statistics)
_HNSW_EF_SEARCH = 100  # pgvector's default 40 trades recall for speed; bench/vector_search.py measures both
_HNSW_EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search
_NUMERIC_SQL = {"greaterThan": ">", "greaterThanOrEquals": ">=", "lessThan": "<", "lessThanOrEquals": "<="}
_INSTALL = (
    "install pgvector 0.5 or later on the PostgreSQL server (https://github.com/pgvector/pgvector: e.g. "
    "`apt install postgresql-16-pgvector`, or the pgvector/pgvector Docker image), then let a superuser run "
    "`CREATE EXTENSION vector` in that database"
)


class PgVectorStore:
    def __init__(self, url: str, table: str, dimension: int) -> None:
        if not _TABLE_NAME.match(table):
            raise InvalidInput(
                f"table name {table!r} is not a plain SQL identifier (letters, digits, _; at most 48 characters).",
                field="table",
            )
        if not 1 <= dimension <= 16000:  # pgvector's limit for the vector type
            raise InvalidInput(f"dimension must be 1-16000 for pgvector, got {dimension}.", field="dimension")
        # SQLAlchemy-style URLs (postgresql+psycopg2://) name a driver; libpq wants the plain scheme
        self.url = re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", url)
        self.table = table
        self.dimension = dimension
        self._connection: Any = None
        self._opened = False  # open() succeeded once: a lost connection is re-made, not an error
        self._statistics: tuple[float, int, float] | None = None  # (when, rows, mean length) for BM25
        self._lock = threading.RLock()  # one connection shared by the server's threads

    def __repr__(self) -> str:
        return f"PgVectorStore({_safe_url(self.url)!r}, {self.table!r}, dimension={self.dimension})"

    # ---- lifecycle

    def open(self) -> None:
        try:
            import psycopg2
            import psycopg2.errors
        except ImportError as exc:
            raise Unavailable(
                "PostgreSQL storage needs the psycopg2 driver: pip install 'tuneforge[postgres]'."
            ) from exc
        with self._lock:
            if self._connection is not None:
                return
            try:
                connection = psycopg2.connect(self.url)
            except psycopg2.Error as exc:
                raise Unavailable(f"cannot connect to PostgreSQL at {_safe_url(self.url)}: {exc}".strip()) from exc
            try:
                self._create(connection)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
            self._opened = True

    def _create(self, connection: Any) -> None:
        import psycopg2

        t = self.table
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            if cursor.fetchone() is None:
                try:
                    cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except psycopg2.Error as exc:
                    raise Unavailable(
                        f"PostgreSQL at {_safe_url(self.url)} cannot do vector search: the pgvector extension "
                        f"is not enabled in this database and could not be created ({' '.join(str(exc).split())}); "
                        f"{_INSTALL}."
                    ) from exc
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            (version,) = cursor.fetchone()
            if tuple(int(part) for part in re.findall(r"\d+", version)[:2]) < (0, 5):
                raise Unavailable(f"pgvector {version} has no HNSW index; {_INSTALL} (ALTER EXTENSION vector UPDATE).")
            # one creator at a time: two processes opening a new knowledge base would race on CREATE INDEX
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"tuneforge-kb-create:{t}",))
            cursor.execute(
                f"""
                CREATE TABLE IF NOT EXISTS "{t}" (
                    chunk_id text PRIMARY KEY,
                    document_id text NOT NULL,
                    text text NOT NULL,
                    content text NOT NULL,
                    metadata jsonb NOT NULL,
                    embedding vector({self.dimension}) NOT NULL,
                    tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
                );
                CREATE INDEX IF NOT EXISTS "{t}_document_id" ON "{t}" (document_id);
                CREATE INDEX IF NOT EXISTS "{t}_embedding" ON "{t}" USING hnsw (embedding vector_cosine_ops);
                CREATE INDEX IF NOT EXISTS "{t}_tsv" ON "{t}" USING gin (tsv);
                CREATE INDEX IF NOT EXISTS "{t}_metadata" ON "{t}" USING gin (metadata jsonb_path_ops);
                """
            )
            cursor.execute(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'embedding'",
                (f'"{t}"',),
            )
            (stored,) = cursor.fetchone()
        if stored != self.dimension:
            raise Conflict(
                f"table {t!r} holds vectors of dimension {stored}, not {self.dimension}; re-create the knowledge "
                "base (or drop the table) to change the embedding model.",
                field="dimension",
            )

    def close(self) -> None:
        with self._lock:
            self._opened = False
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def drop(self) -> None:
        with self._lock:
            with self._transaction() as cursor:
                cursor.execute(f'DROP TABLE IF EXISTS "{self.table}"')
            self._statistics = None
            self.close()

    # ---- writes

    def replace_document(self, document_id: str, chunks: Sequence[StoredChunk]) -> None:
        import psycopg2.errors
        from psycopg2.extras import execute_values

        vectors = checked_vectors(document_id, chunks, self.dimension)
        rows = [
            (
                chunk.chunk_id,
                document_id,
                _no_nul(chunk.text),
                _no_nul(chunk.content),
                json.dumps({k: _no_nul(v) for k, v in chunk.metadata.items()}),  # jsonb refuses \u0000 too
                _vector_text(vector),
            )
            for chunk, vector in zip(chunks, vectors)
        ]
        try:
            with self._transaction() as cursor:
                self._lock_document(cursor, document_id)
                cursor.execute(f'DELETE FROM "{self.table}" WHERE document_id = %s', (document_id,))
                execute_values(
                    cursor,
                    f'INSERT INTO "{self.table}" (chunk_id, document_id, text, content, metadata, embedding) VALUES %s',
                    rows,
                    template="(%s, %s, %s, %s, %s::jsonb, %s::vector)",
                    page_size=500,
                )
        except psycopg2.errors.UniqueViolation as exc:  # the transaction was rolled back
            raise self._taken(document_id, [row[0] for row in rows]) from exc
        self._statistics = None

    def delete_document(self, document_id: str) -> None:
        with self._transaction() as cursor:
            self._lock_document(cursor, document_id)
            cursor.execute(f'DELETE FROM "{self.table}" WHERE document_id = %s', (document_id,))
        self._statistics = None

    def _lock_document(self, cursor: Any, document_id: str) -> None:
        # two writers of one document (two ingestion jobs) would otherwise interleave DELETE and INSERT
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.table}/{document_id}",))

    def _taken(self, document_id: str, chunk_ids: list[str]) -> Conflict:
        with self._transaction() as cursor:
            cursor.execute(
                f'SELECT chunk_id, document_id FROM "{self.table}" WHERE chunk_id = ANY(%s) AND document_id != %s '
                "LIMIT 1",
                (chunk_ids, document_id),
            )
            owner = cursor.fetchone()
        taken = f"chunk id {owner[0]!r} already belongs to document {owner[1]!r}" if owner else "a chunk id is taken"
        return Conflict(f"{taken}; chunk ids must be unique within a knowledge base.", field="chunk_id")

    # ---- reads

    def document_ids(self) -> set[str]:
        return {row[0] for row in self._query(f'SELECT DISTINCT document_id FROM "{self.table}"', ())}

    def count(self) -> int:
        return self._query(f'SELECT count(*) FROM "{self.table}"', ())[0][0]

    def search(self, vector: numpy.ndarray, *, k: int, filter: Filter | None = None) -> list[Hit]:
        query = _vector_text(checked_query(vector, self.dimension, k))
        where, params = ("TRUE", []) if filter is None else filter_sql(filter)
        settings = [f"SET LOCAL hnsw.ef_search = {min(max(_HNSW_EF_SEARCH, 2 * k), _HNSW_EF_SEARCH_MAX)}"]
        if filter is not None:
            settings.append("SET LOCAL enable_indexscan = off")  # exact ranking of the admitted rows (see above)
        rows = self._query(
            f"SELECT chunk_id, document_id, text, content, metadata, 1 - (embedding <=> %s::vector) "
            f'FROM "{self.table}" WHERE {where} ORDER BY embedding <=> %s::vector LIMIT %s',  # the HNSW order
            (query, *params, query, k),
            settings,
        )
        return [Hit(StoredChunk(*row[:5]), float(row[5])) for row in rows]

    def keyword_search(self, query: str, *, k: int, filter: Filter | None = None) -> list[Hit]:
        if k < 1:
            raise InvalidInput(f"k must be at least 1, got {k}.", field="k")
        words = query_terms(query)
        if not words:
            return []
        documents, average_length = self._bm25_statistics()
        if documents == 0:
            return []
        where, params = ("TRUE", []) if filter is None else filter_sql(filter)
        t = self.table
        # Okapi BM25 over the tsvector: the query's lexemes (parsed like the rows, so that "4.12.7" stays one
        # lexeme; 'english' drops the stopwords query_terms drops), each one's document
        # frequency from the GIN index, its term frequency from the row's positions; a row's length is its
        # number of distinct lexemes (what length(tsvector) counts). ts_rank_cd, used before, has no IDF.
        # MATERIALIZED: inlined, the document-frequency counts ran once per (row, lexeme) pair.
        rows = self._query(
            f"""
            WITH terms AS MATERIALIZED (SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s))),
            weighted AS MATERIALIZED (
                SELECT lexeme, ln(1 + (%s - df + 0.5) / (df + 0.5)) AS idf
                FROM (SELECT lexeme, (SELECT count(*) FROM "{t}" WHERE tsv @@ quote_literal(lexeme)::tsquery) AS df
                      FROM terms) AS counted
            ),
            q AS MATERIALIZED (SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery AS q FROM terms)
            SELECT c.chunk_id, c.document_id, c.text, c.content, c.metadata,
                   sum(w.idf * array_length(u.positions, 1) * {_BM25_K1 + 1} / (array_length(u.positions, 1)
                       + {_BM25_K1} * (1 - {_BM25_B} + {_BM25_B} * length(c.tsv) / %s))) AS score
            FROM "{t}" AS c CROSS JOIN q
                 CROSS JOIN LATERAL unnest(c.tsv) AS u(lexeme, positions, weights)
                 JOIN weighted AS w ON w.lexeme = u.lexeme
            WHERE c.tsv @@ q.q AND {where}
            GROUP BY c.chunk_id
            ORDER BY score DESC, c.chunk_id LIMIT %s
            """,
            (_no_nul(query), documents, average_length, *params, k),
        )
        return [Hit(StoredChunk(*row[:5]), float(row[5])) for row in rows]

    def _bm25_statistics(self) -> tuple[int, float]:
        """(rows, mean lexemes per row), for BM25: counting them is a scan of the table, so they are kept for
        _STATISTICS_SECONDS (and dropped on this store's writes); BM25 barely moves with a few rows more."""
        now = time.monotonic()
        kept = self._statistics
        if kept is not None and now - kept[0] < _STATISTICS_SECONDS:
            return kept[1], kept[2]
        ((documents, average_length),) = self._query(
            f'SELECT count(*), coalesce(avg(length(tsv)), 0) FROM "{self.table}"', ()
        )
        if documents:  # an empty table is not remembered: an ingestion process may be filling it now
            self._statistics = (now, int(documents), float(average_length) or 1.0)
        return int(documents), float(average_length) or 1.0

    # ---- internals

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor in one transaction (committed on success). A lost connection becomes Unavailable, and the
        next call connects again, so a restarted PostgreSQL costs one failed request, not a restart of ours."""
        import psycopg2

        with self._lock:
            if self._connection is None:
                if not self._opened:
                    raise Unavailable(f"{self!r} is not open; call open() first.")
                try:
                    self._connection = psycopg2.connect(self.url)
                except psycopg2.Error as exc:
                    raise Unavailable(f"cannot connect to PostgreSQL at {_safe_url(self.url)}: {exc}".strip()) from exc
            connection = self._connection
            try:
                with connection, connection.cursor() as cursor:
                    yield cursor
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                if connection.closed:
                    self._connection = None
                raise Unavailable(
                    f"PostgreSQL at {_safe_url(self.url)} failed: {' '.join(str(exc).split())}; retry later."
                ) from exc

    def _query(self, sql: str, params: Sequence[Any], settings: Sequence[str] = ()) -> list[tuple]:
        with self._transaction() as cursor:
            for setting in settings:
                cursor.execute(setting)
            cursor.execute(sql, params)
            return cursor.fetchall()


def filter_sql(node: Filter) -> tuple[str, list[Any]]:
    """Translate a Filter into a WHERE fragment over `metadata` with psycopg2 %s parameters."""
    if isinstance(node, Logical):
        parts = [filter_sql(member) for member in node.members]
        joiner = " AND " if node.op == "andAll" else " OR "
        return "(" + joiner.join(sql for sql, _ in parts) + ")", [p for _, params in parts for p in params]
    assert isinstance(node, Comparison)
    key, value = node.key, node.value
    if node.op in ("equals", "notEquals"):
        sql = "metadata @> %s::jsonb"
        return (sql if node.op == "equals" else f"NOT ({sql})"), [json.dumps({key: value})]
    if node.op in ("in", "notIn"):
        sql = "metadata @> ANY(%s::jsonb[])"
        members = [json.dumps({key: member}) for member in value]  # type: ignore[union-attr]
        return (sql if node.op == "in" else f"NOT ({sql})"), [members]
    if node.op == "listContains":
        return "metadata @> %s::jsonb", [json.dumps({key: [value]})]
    if node.op in NUMERIC:
        # CASE, not AND: PostgreSQL may evaluate AND's operands in any order, and a string would fail the cast
        return (
            f"(CASE WHEN jsonb_typeof(metadata -> %s) = 'number' "
            f"THEN (metadata ->> %s)::numeric {_NUMERIC_SQL[node.op]} %s ELSE false END)",
            [key, key, value],
        )
    if node.op == "startsWith":
        return "(jsonb_typeof(metadata -> %s) = 'string' AND starts_with(metadata ->> %s, %s))", [key, key, value]
    if node.op == "stringContains":
        return (
            "(CASE jsonb_typeof(metadata -> %s) WHEN 'string' THEN strpos(metadata ->> %s, %s) > 0 "
            "WHEN 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements_text(metadata -> %s) AS member "
            "WHERE strpos(member, %s) > 0) ELSE false END)",
            [key, key, value, key, value],
        )
    raise AssertionError(f"unknown operator {node.op}")  # parse_filter admits only these


def _no_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; PDF extraction sometimes leaves one, and it carries no meaning
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_no_nul(member) for member in value]
    return value


def _vector_text(vector: numpy.ndarray) -> str:
    return "[" + ",".join(map(repr, vector.tolist())) + "]"  # pgvector's text input; repr round-trips float32


def _safe_url(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
