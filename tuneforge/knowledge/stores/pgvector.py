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
Keyword search ORs the query's words (each through plainto_tsquery('english'), so no query syntax is
interpreted) and ranks by ts_rank_cd.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy

from tuneforge.errors import Conflict, InvalidInput, Unavailable
from tuneforge.knowledge.filters import NUMERIC, Comparison, Filter, Logical
from tuneforge.knowledge.stores.base import Hit, StoredChunk, checked_query, checked_vectors

_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")  # room for the index-name suffixes within 63 bytes
_WORD = re.compile(r"\w+")
_MAX_QUERY_WORDS = 256  # a 20,000-character query would otherwise build a tsquery of thousands of ORs
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

    def delete_document(self, document_id: str) -> None:
        with self._transaction() as cursor:
            self._lock_document(cursor, document_id)
            cursor.execute(f'DELETE FROM "{self.table}" WHERE document_id = %s', (document_id,))

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
        words = list(dict.fromkeys(_WORD.findall(query)))[:_MAX_QUERY_WORDS]
        if not words:
            return []
        tsquery = " || ".join(["plainto_tsquery('english', %s)"] * len(words))  # || is OR on tsqueries
        where, params = ("TRUE", []) if filter is None else filter_sql(filter)
        rows = self._query(
            f"SELECT chunk_id, document_id, text, content, metadata, ts_rank_cd(tsv, q) AS rank "
            f'FROM "{self.table}", (SELECT {tsquery}) AS q_(q) WHERE tsv @@ q AND {where} '
            "ORDER BY rank DESC, chunk_id LIMIT %s",
            (*words, *params, k),
        )
        return [Hit(StoredChunk(*row[:5]), float(row[5])) for row in rows]

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
