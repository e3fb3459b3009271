"""How fast do the knowledge-base stores search? Same chunks, same queries, one run.

    python bench/vector_search.py [--chunks 20000] [--dimension 384] [--queries 50]
                                  [--postgres-url postgresql://...] [--redis-url redis://...]
    python bench/vector_search.py --chunks 300 --queries 5                     # smoke run (CI)

SqliteStore (always): ingestion rate, exact cosine search on its cached numpy matrix, the same search with a
filter (Filter.matches over the cached metadata), keyword search (FTS5 BM25), and the first search after a
write (the matrix is rebuilt). Baseline, same run: the exact search without the cache, reading every vector from
SQLite for each query, which is what the cache saves. PgVectorStore / RedisStore are measured on the same data
when a URL is given (their tables/indexes are dropped afterwards), with recall@10 of their HNSW search
against the exact answer.

Why numpy and not sqlite-vec: sqlite-vec is a loadable extension, and Pythons built without
enable_load_extension (the one this project's venv uses) cannot load it; the numpy product is exact and needs
nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from _preflight import require  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "numpy")

import numpy  # noqa: E402

from tuneforge.knowledge.filters import parse_filter  # noqa: E402
from tuneforge.knowledge.stores import SqliteStore, StoredChunk, VectorStore  # noqa: E402

WORDS = "statute securities exchange registration broker dealer issuer prospectus filing disclosure".split()


def make_chunks(count: int, dimension: int, seed: int = 0) -> dict[str, list[StoredChunk]]:
    rng = numpy.random.default_rng(seed)
    # clustered like real embeddings (topics), not uniform noise, on which every HNSW's recall collapses
    centers = rng.normal(size=(max(count // 100, 1), dimension))
    vectors = (centers[rng.integers(len(centers), size=count)] + 0.6 * rng.normal(size=(count, dimension)))
    vectors = vectors.astype(numpy.float32)
    vectors /= numpy.linalg.norm(vectors, axis=1, keepdims=True)
    documents: dict[str, list[StoredChunk]] = {}
    for n in range(count):
        uri = f"s3://bench/doc-{n // 20}.txt"  # 20 chunks per document
        text = " ".join(rng.choice(WORDS, size=40)) + f" chunk{n}"
        metadata = {"year": 1990 + n % 35, "genre": ["act", "rule", "case"][n % 3], "x-amz-bedrock-kb-source-uri": uri}
        documents.setdefault(uri, []).append(StoredChunk(f"c{n}", uri, text, text, metadata, vectors[n]))
    return documents


def timed(function, repeats: int) -> float:
    """Median seconds of `repeats` calls."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        function(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def uncached_search(store: SqliteStore, query: numpy.ndarray, k: int) -> list[str]:
    rows = store._connection.execute("SELECT chunk_id, vector FROM chunks").fetchall()  # noqa: SLF001
    matrix = numpy.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").reshape(len(rows), store.dimension)
    top = numpy.argsort(-(matrix @ query))[:k]
    return [rows[i][0] for i in top]


def measure(label: str, store: VectorStore, documents, queries, exact: list[list[str]] | None) -> list[list[str]]:
    start = time.perf_counter()
    for uri, chunks in documents.items():
        store.replace_document(uri, chunks)
    total = sum(len(chunks) for chunks in documents.values())
    print(f"{label}: ingested {total} chunks at {total / (time.perf_counter() - start):,.0f} chunks/s")
    flt = parse_filter({"andAll": [{"equals": {"key": "genre", "value": "act"}}, {"greaterThan": {"key": "year", "value": 2010}}]})
    store.search(queries[0], k=10)  # warm: the SQLite matrix, connections
    found = [[hit.chunk.chunk_id for hit in store.search(q, k=10)] for q in queries]
    search = timed(lambda i: store.search(queries[i % len(queries)], k=10), len(queries))
    filtered = timed(lambda i: store.search(queries[i % len(queries)], k=10, filter=flt), len(queries))
    fresh = timed(  # a different filter each call: nothing remembered
        lambda i: store.search(queries[i % len(queries)], k=10, filter=parse_filter(
            {"andAll": [{"equals": {"key": "genre", "value": "act"}}, {"greaterThan": {"key": "year", "value": 1990 + i % 30}}]}
        )),
        len(queries),
    )
    keyword = timed(lambda i: store.keyword_search(f"broker prospectus chunk{i}", k=10), len(queries))
    print(f"  search k=10        {search * 1000:8.2f} ms")
    print(f"  filtered search    {filtered * 1000:8.2f} ms  (genre=act and year>2010, repeated)")
    print(f"  filtered, new one  {fresh * 1000:8.2f} ms  (genre=act and year>1990+i)")
    print(f"  keyword search     {keyword * 1000:8.2f} ms")
    if exact is not None:
        recall = numpy.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, exact)])
        print(f"  recall@10 vs exact {recall:8.3f}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--postgres-url")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    require(*(["psycopg2"] if args.postgres_url else []), *(["redis"] if args.redis_url else []))  # the optional stores' clients
    documents = make_chunks(args.chunks, args.dimension)
    rng = numpy.random.default_rng(1)
    # queries near the data (a chunk's vector plus noise), as a question near its answer
    pool = numpy.stack([chunks[0].vector for chunks in documents.values()])
    picked = pool[rng.integers(len(pool), size=args.queries)] + 0.05 * rng.normal(size=(args.queries, args.dimension))
    queries = [q / numpy.linalg.norm(q) for q in picked.astype(numpy.float32)]

    with tempfile.TemporaryDirectory() as root:
        store = SqliteStore(Path(root) / "bench.sqlite", args.dimension, "bench")
        store.open()
        exact = measure(f"SqliteStore ({args.chunks} x {args.dimension})", store, documents, queries, None)
        baseline = timed(lambda i: uncached_search(store, queries[i % len(queries)], 10), min(args.queries, 10))
        cached = timed(lambda i: store.search(queries[i % len(queries)], k=10), args.queries)
        assert uncached_search(store, queries[0], 10) == exact[0]
        print(f"  baseline: uncached exact search {baseline * 1000:8.2f} ms -> cache speed-up x{baseline / cached:.1f}")
        first = next(iter(documents))

        def after_write(i: int) -> None:
            store.replace_document(first, documents[first])
            store.search(queries[0], k=10)

        print(f"  write + first search (matrix rebuilt) {timed(after_write, 5) * 1000:8.2f} ms")
        store.close()

    name = f"bench_{uuid.uuid4().hex[:8]}"
    if args.postgres_url:
        from tuneforge.knowledge.stores.pgvector import PgVectorStore

        pg = PgVectorStore(args.postgres_url, name, args.dimension)
        pg.open()
        try:
            measure("PgVectorStore", pg, documents, queries, exact)
        finally:
            pg.drop()
    if args.redis_url:
        from tuneforge.knowledge.stores.redis import RedisStore

        redis_store = RedisStore(args.redis_url, name, args.dimension)
        redis_store.open()
        try:
            measure("RedisStore", redis_store, documents, queries, exact)
        finally:
            redis_store.drop()


if __name__ == "__main__":
    main()
