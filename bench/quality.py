"""Quality of the two reference demos, end to end: fine-tuning (ROUGE, base vs custom) and continued pre-training
(perplexity before/after), on the default model, with the product's own data preparation, trainer and evaluation.

    python bench/quality.py                                            # full size: about an hour at --threads 1
    python bench/quality.py --train-records 2 --eval-records 2 --max-tokens 8 --chapters 1 --cpt-chunks 2 \
        --chunk-tokens 128 --eval-chapters 14 --eval-chars 2000                    # smoke run (CI)

1. Fine-tuning (Bedrock demo 1): the first `--train-records` (1,000) dialogues of DialogSum's train.jsonl become
   prompt/completion records with the reference prompt ("Summarize the simplest and most interesting part of the
   following conversation.\\n\\n{dialogue}\\n\\nSummary: ", completion = the summary) through
   `tuneforge.data.from_table`, pass the job validator, and train one epoch with the default hyperparameters
   (`parse_hyperparameters({})`: LoRA r16, batch 8, lr 2e-4) through `tuneforge.training.train`, as a job does.
   Then ROUGE-1/2/L (rouge-score, F-measure, mean over rows) of the base and the custom model, greedy, at most
   `--max-tokens` tokens, on the first `--eval-records` (100) rows of dev.jsonl with the same prompt. With
   `--base-chat` the base model is also scored with each prompt sent as a user message in its chat template
   (the base is an instruct model; the raw prompt is what fine-tuning trains on, so it is the like-for-like row).
2. Continued pre-training (Bedrock demo 2): chapters 01..`--chapters` (12) of the rlhf-book (Markdown) become
   {"input"} records with `tuneforge.data.from_docs` (chunks of at most the training length - 1 tokens of the
   model's tokenizer, or `--chunk-tokens`, 10% overlap; the first `--cpt-chunks` of them if given), validated,
   trained one epoch with the default hyperparameters. Perplexity of the base and the custom model on
   `--eval-chapters` (13 and 14; their first `--eval-chars` characters if given), which training never saw,
   measured as the trainer measures validation loss (`tuneforge.evaluation`: windows of the training length).

Prints both tables, the training figures (records, steps, final loss, tokens/s) and the wall time of each phase.
The book was written in 2025-26, after SmolLM2 was trained, so its text is new to the base model. Models are
evaluated in a child process (`tuneforge.evaluation.run`), as the CLI does; training runs in this process.
Limits: one seed, one run; a small smoke run says the pipeline works, not how good the result is.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

from _preflight import require, shared_data  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "torch", "transformers", "peft", "datasets", "rouge_score", "rich")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tuneforge.catalog.builtin import BUILTIN_MODELS, DEFAULT_MODEL_ID, package_path  # noqa: E402
from tuneforge.catalog.entries import Customization  # noqa: E402
from tuneforge.data import DatasetKind, load_token_counter, read_records, validate_dataset  # noqa: E402
from tuneforge.data.from_docs import documents_to_records  # noqa: E402
from tuneforge.data.from_table import PromptTemplate, load_table, table_to_records, write_jsonl  # noqa: E402
from tuneforge.evaluation import EvalModel, PromptRow, compare_perplexity, compare_rouge, load_texts  # noqa: E402
from tuneforge.inference.materialize import materialize_gguf  # noqa: E402
from tuneforge.inference.spec import WorkerSpec  # noqa: E402
from tuneforge.settings import load_settings  # noqa: E402
from tuneforge.training import TrainConfig, parse_hyperparameters, train  # noqa: E402
from tuneforge.training.trainer import DEFAULT_MAX_LEN  # noqa: E402

PROMPT = "Summarize the simplest and most interesting part of the following conversation.\n\n{dialogue}\n\nSummary: "
console = Console()


def default_checkpoint() -> Path:
    entry = next(m for m in BUILTIN_MODELS if m.model_id == DEFAULT_MODEL_ID)
    return materialize_gguf(package_path(entry.source.location), load_settings().models_dir / DEFAULT_MODEL_ID)


def dialogsum_rows(path: Path, count: int) -> list[dict[str, str]]:
    table = load_table(str(path))
    template = PromptTemplate.parse(PROMPT, columns=table.column_names)
    return table_to_records(table, template, completion_field="summary", select=count).training


def train_on(records_file: Path, kind: DatasetKind, checkpoint: Path, output: Path, threads: int | None) -> tuple[dict, object]:
    """Validate as a job does, then train with the default hyperparameters. (figures, TrainResult)"""
    count = load_token_counter(checkpoint)
    report = validate_dataset(records_file, kind, count_tokens=count, max_sequence_length=DEFAULT_MAX_LEN)
    if not report.ok:
        raise SystemExit(report.failure_message())
    hparams = parse_hyperparameters({})
    started = time.perf_counter()
    result = train(TrainConfig(base=checkpoint, kind=Customization(kind.value), training=list(read_records(records_file, kind)),
                               output=output, hparams=hparams, threads=threads),
                   on_step=lambda m: console.print(f"  step {m.step + 1}: loss {m.loss:.4f}, {m.tokens_per_second:.0f} tokens/s", highlight=False))
    figures = {"records": report.records, "tokens": report.tokens, "steps": result.steps, "final_training_loss": result.training_loss,
               "tokens_per_second": result.tokens_per_second, "seconds": time.perf_counter() - started}
    return figures, result


def fine_tuning(shared: Path, checkpoint: Path, work: Path, args: argparse.Namespace) -> dict:
    records = dialogsum_rows(shared / "dialogsum" / "train.jsonl", args.train_records)
    write_jsonl(records, work / "ft-train.jsonl")
    console.print(f"[bold]fine-tuning[/] on {len(records)} DialogSum dialogues")
    figures, result = train_on(work / "ft-train.jsonl", DatasetKind.FINE_TUNING, checkpoint, work / "ft", args.threads)
    held_out = [PromptRow(r["prompt"], r["completion"]) for r in dialogsum_rows(shared / "dialogsum" / "dev.jsonl", args.eval_records)]
    models = [EvalModel("base", WorkerSpec("base", str(checkpoint))),
              EvalModel("custom (fine-tuned)", WorkerSpec("custom", str(checkpoint), adapter=str(result.artifact_dir)))]
    started = time.perf_counter()
    rouge = compare_rouge(models, held_out, max_tokens=args.max_tokens, threads=args.threads)
    results = list(rouge.results)
    if args.base_chat:
        chat = compare_rouge([EvalModel("base, chat template", WorkerSpec("base", str(checkpoint)))], held_out,
                             max_tokens=args.max_tokens, chat=True, threads=args.threads)
        results.insert(1, chat.results[0])
    figures["eval_seconds"] = time.perf_counter() - started
    table = Table(title=f"ROUGE on the first {len(held_out)} DialogSum dev rows (greedy, at most {args.max_tokens} tokens)")
    for column in ("Model", "ROUGE-1", "ROUGE-2", "ROUGE-L", "Tokens/row"):
        table.add_column(column, justify="left" if column == "Model" else "right")
    for r in results:
        table.add_row(r.label, f"{r.scores.rouge1:.4f}", f"{r.scores.rouge2:.4f}", f"{r.scores.rougeL:.4f}", f"{r.generated_tokens / len(held_out):.1f}")
    console.print(table)
    console.print(f"  reference: {held_out[0].reference}", highlight=False)
    for r in results:
        console.print(f"  {r.label}: {r.predictions[0]}", highlight=False)
    return {**figures, "rouge": {r.label: r.scores.as_dict() for r in results}}


def continued_pre_training(shared: Path, checkpoint: Path, work: Path, args: argparse.Namespace) -> dict:
    chapters = sorted((shared / "rlhf-book" / "chapters").glob("[0-9][0-9]-*.md"))
    training = [c for c in chapters if int(c.name[:2]) <= args.chapters]
    evaluation = [c for c in chapters if int(c.name[:2]) in args.eval_chapters]
    if set(training) & set(evaluation):
        raise SystemExit("--chapters and --eval-chapters overlap: perplexity must be measured on text training never saw")
    conversion = documents_to_records(training, count_tokens=load_token_counter(checkpoint), max_tokens=args.chunk_tokens or DEFAULT_MAX_LEN - 1)
    records = conversion.records[: args.cpt_chunks] if args.cpt_chunks else conversion.records
    write_jsonl(records, work / "cpt-train.jsonl")
    console.print(f"[bold]continued pre-training[/] on chapters {', '.join(c.name[:2] for c in training)}: "
                  f"{len(records)} of {len(conversion.records)} chunks ({conversion.tokens:,} tokens in all)")
    figures, result = train_on(work / "cpt-train.jsonl", DatasetKind.CONTINUED_PRE_TRAINING, checkpoint, work / "cpt", args.threads)
    models = [EvalModel("base", WorkerSpec("base", str(checkpoint))),
              EvalModel("custom (continued pre-training)", WorkerSpec("custom", str(checkpoint), adapter=str(result.artifact_dir)))]
    started = time.perf_counter()
    texts = [dataclasses.replace(t, text=t.text[: args.eval_chars]) for t in load_texts(evaluation)]
    ppl = compare_perplexity(models, texts, threads=args.threads)
    figures["eval_seconds"] = time.perf_counter() - started
    table = Table(title=f"Perplexity on chapters {', '.join(c.name[:2] for c in evaluation)} "
                        f"({ppl.results[0].tokens:,} tokens predicted, windows of {ppl.results[0].max_length})")
    for column in ("Model", "Perplexity", "Loss (nats/token)"):
        table.add_column(column, justify="left" if column == "Model" else "right")
    for r in ppl.results:
        table.add_row(r.label, f"{r.perplexity:.3f}", f"{r.loss:.4f}")
    console.print(table)
    return {**figures, "chunks": len(records), "perplexity": {r.label: r.perplexity for r in ppl.results}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-records", type=int, default=1000, help="DialogSum training dialogues (the first N)")
    parser.add_argument("--eval-records", type=int, default=100, help="DialogSum dev rows scored with ROUGE (the first N)")
    parser.add_argument("--chapters", type=int, default=12, help="train on rlhf-book chapters 01..N")
    parser.add_argument("--eval-chapters", type=lambda s: [int(x) for x in s.split(",")], default=[13, 14],
                        help="comma-separated chapter numbers for perplexity (default 13,14)")
    parser.add_argument("--eval-chars", type=int, default=None, help="score the first N characters of each (default: all)")
    parser.add_argument("--cpt-chunks", type=int, default=None, help="train on the first N chunks only (default: all)")
    parser.add_argument("--chunk-tokens", type=int, default=None, help="tokens per chunk (default: the training length - 1)")
    parser.add_argument("--max-tokens", type=int, default=128, help="most tokens generated per ROUGE row")
    parser.add_argument("--base-chat", action="store_true", help="also score the base model with its chat template")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (training and evaluation)")
    parser.add_argument("--skip-ft", action="store_true")
    parser.add_argument("--skip-cpt", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    shared = shared_data("dialogsum/train.jsonl", "dialogsum/dev.jsonl", "rlhf-book/chapters")  # before any work

    import transformers

    transformers.logging.set_verbosity_error()  # keep the figures readable: no weight-loading bars or deprecation notes
    transformers.utils.logging.disable_progress_bar()
    started = time.perf_counter()
    console.print(f"load average {'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}; train records {args.train_records}, "
                  f"eval rows {args.eval_records}, chapters 01-{args.chapters:02d}, eval chapters {args.eval_chapters}")
    checkpoint = default_checkpoint()
    figures: dict = {"arguments": {k: v for k, v in vars(args).items() if k != "json"}}
    with tempfile.TemporaryDirectory(prefix="tuneforge-quality-") as tmp:
        work = Path(tmp)
        if not args.skip_ft:
            phase = time.perf_counter()
            figures["fine_tuning"] = fine_tuning(shared, checkpoint, work, args)
            figures["fine_tuning"]["wall_seconds"] = time.perf_counter() - phase
            console.print(f"fine-tuning phase: {figures['fine_tuning']['wall_seconds']:.0f} s wall "
                          f"(training {figures['fine_tuning']['seconds']:.0f} s, evaluation {figures['fine_tuning']['eval_seconds']:.0f} s)")
        if not args.skip_cpt:
            phase = time.perf_counter()
            figures["continued_pre_training"] = continued_pre_training(shared, checkpoint, work, args)
            figures["continued_pre_training"]["wall_seconds"] = time.perf_counter() - phase
            cpt = figures["continued_pre_training"]
            console.print(f"continued pre-training phase: {cpt['wall_seconds']:.0f} s wall "
                          f"(training {cpt['seconds']:.0f} s, evaluation {cpt['eval_seconds']:.0f} s)")
    figures["wall_seconds"] = time.perf_counter() - started
    console.print(f"[bold]total wall time: {figures['wall_seconds']:.0f} s[/]")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    main()
