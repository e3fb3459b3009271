"""What the fine-tuning default training length costs: the old fixed 1,024 tokens against the new default that
grows to the longest record (tuneforge.training.lengths), on the longest DialogSum records, same run.

    python bench/training_length.py                 # the 16 longest of the first 1,000 DialogSum rows, batch 8
    python bench/training_length.py --rows 32
    python bench/training_length.py --smoke         # smoke run (CI): a few rows, to check the script runs

Workload: the first `--records` DialogSum training rows with the reference prompt; the `--rows` longest of them
(by the default model's tokenizer) are trained for one epoch, LoRA, batchSize 8, twice, each in a fresh process:
- baseline: maxSequenceLength 1024, the old default (the validator used to refuse longer records; the trainer
  cuts them, so this side trains fewer tokens);
- default: no maxSequenceLength, so the length grows to the longest record (1,087 tokens on DialogSum's first
  1,000 rows) and nothing is cut.
Printed per side: the training length, real tokens trained, tokens/s (the trainer's own: real input tokens over
the summed time of its optimizer steps) and the process's peak resident memory (ru_maxrss, model load included),
then the default's ratio to the baseline for each. Memory stays bounded either way because a micro-batch is split
into forward passes of at most TOKENS_PER_FORWARD padded tokens; the run shows how much the longer rows add.
Limits: on a machine shared with other work both sides slow down, unevenly if the load changes between them (the
load average is printed); a few steps weigh the first one's warm-up in.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _preflight import require, shared_data  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "torch", "transformers", "peft", "rich")

PROMPT = "Summarize the simplest and most interesting part of the following conversation.\n\n{dialogue}\n\nSummary: "
BASELINE = 1024


def dialogsum(count: int) -> list[dict[str, str]]:
    path = shared_data("dialogsum/train.jsonl") / "dialogsum" / "train.jsonl"
    with path.open() as lines:
        rows = [json.loads(line) for _, line in zip(range(count), lines)]
    return [{"prompt": PROMPT.format(dialogue=r["dialogue"]), "completion": r["summary"]} for r in rows]


def child(checkpoint: Path, data: Path, max_len: int | None) -> None:
    """One side, in its own process so that its peak memory is its own."""
    from tuneforge.catalog.entries import Customization
    from tuneforge.training import TrainConfig, parse_hyperparameters, train

    raw = {"epochCount": "1", "batchSize": "8", **({"maxSequenceLength": str(max_len)} if max_len else {})}
    records = [json.loads(line) for line in data.read_text().splitlines()]
    with tempfile.TemporaryDirectory(prefix="tuneforge-bench-") as out:
        result = train(TrainConfig(base=checkpoint, kind=Customization.FINE_TUNING, training=records, output=Path(out),
                                   hparams=parse_hyperparameters(raw)))
    print(json.dumps({"max_len": result.max_len, "tokens": result.tokens_trained, "tokens_per_second": result.tokens_per_second,
                      "truncated": result.truncated, "peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--smoke", action="store_true", help="2 rows of the first 20: checks the script, measures nothing")
    parser.add_argument("--child", nargs=3, metavar=("CHECKPOINT", "DATA", "MAX_LEN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), int(args.child[2]) or None)
        return
    if args.smoke:
        args.records, args.rows = 20, 2

    from rich.console import Console
    from rich.table import Table

    from tuneforge.catalog.builtin import BUILTIN_MODELS, DEFAULT_MODEL_ID, package_path
    from tuneforge.data import load_token_counter
    from tuneforge.settings import load_settings

    entry = next(m for m in BUILTIN_MODELS if m.model_id == DEFAULT_MODEL_ID)
    checkpoint = load_settings().models_dir / DEFAULT_MODEL_ID
    # materialized in a child: this process stays free of torch, so its memory says nothing about the sides
    subprocess.run([sys.executable, "-m", "tuneforge.inference.materialize", str(package_path(entry.source.location)),
                    str(checkpoint)], check=True, stdout=subprocess.DEVNULL)
    records = dialogsum(args.records)
    count = load_token_counter(checkpoint)
    lengths = [a + b for a, b in zip(count([r["prompt"] for r in records]), count([r["completion"] for r in records]))]
    longest = sorted(range(len(records)), key=lambda i: -lengths[i])[: args.rows]
    with tempfile.TemporaryDirectory(prefix="tuneforge-bench-") as work:
        data = Path(work) / "longest.jsonl"
        data.write_text("".join(json.dumps(records[i]) + "\n" for i in longest))
        sides = {}
        for name, max_len in (("fixed 1,024", BASELINE), ("grows", 0)):
            print(f"{name}: training {args.rows} rows (load {' '.join(f'{x:.2f}' for x in os.getloadavg())})", file=sys.stderr)
            out = subprocess.run([sys.executable, __file__, "--child", str(checkpoint), str(data), str(max_len)],
                                 check=True, capture_output=True, text=True).stdout
            sides[name] = json.loads(out.strip().splitlines()[-1])
    base = sides["fixed 1,024"]
    table = Table(title=f"the {args.rows} longest of {args.records} DialogSum rows (longest {max(lengths):,} tokens), batch 8")
    for column in ("side", "length", "cut", "tokens", "tokens/s", "peak GiB", "speed ratio", "peak ratio"):
        table.add_column(column, justify="left" if column == "side" else "right")
    for name, side in sides.items():
        table.add_row(name, f"{side['max_len']:,}", str(side["truncated"]), f"{side['tokens']:,}", f"{side['tokens_per_second']:.1f}",
                      f"{side['peak_gib']:.2f}", f"{side['tokens_per_second'] / base['tokens_per_second']:.2f}x",
                      f"{side['peak_gib'] / base['peak_gib']:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
