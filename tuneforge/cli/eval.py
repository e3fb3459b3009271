"""`tuneforge eval rouge|perplexity`: compare base and custom models on held-out data, side by side.

    tuneforge eval rouge dev.jsonl -m huggingfacetb.smollm2-135m-instruct-v1 -m my-summarizer --rows 100 --chart rouge.png
    tuneforge eval perplexity chapters/13-tools.md chapters/14-over-optimization.md -m BASE -m my-cpt-model

Models are catalog ids, aliases or ARNs, or custom model names, ids or ARNs. They run one after another in a
child process (this process never imports torch); ROUGE is scored here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from tuneforge.cli import eval_jobs
from tuneforge.cli.runtime import console, err_console, model_resolver, print_json
from tuneforge.cli.tables import Column, WideFlag, print_table
from tuneforge.evaluation.compare import DEFAULT_MAX_TOKENS, EvalModel
from tuneforge.evaluation.rouge import ROUGE_TYPES

app = typer.Typer(help="Compare models: ROUGE on held-out prompts, perplexity on held-out text.", no_args_is_help=True)
app.add_typer(eval_jobs.app, name="jobs")
Models = Annotated[list[str], typer.Option("--model", "-m", help="A catalog or custom model (repeat for each model to compare).")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda[:N].")]
Dtype = Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16.")]
Threads = Annotated[Optional[int], typer.Option(min=1, help="CPU threads for the model process (default: torch's, one per core).")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the results as JSON (with every prediction, for rouge).")]
Chart = Annotated[Optional[Path], typer.Option("--chart", help="Also write a bar chart to this PNG file (needs matplotlib, the charts extra).")]


def _resolve(identifiers: list[str], device: str, dtype: str):
    """The models to compare, and what removes their decrypted copies (encrypted custom models) afterwards."""
    from tuneforge.models.resolve import LOADABLE

    resolver = model_resolver()
    resolved = [resolver.resolve(i, kinds=LOADABLE, field="--model") for i in identifiers]
    models = [EvalModel(r.identifier, resolver.worker_spec(r, device=device, dtype=dtype)) for r in resolved]
    return models, lambda: [resolver.registry.release(m.spec) for m in models]


class _Bars:
    """One progress bar per model, driven by the evaluation process's events."""

    def __init__(self, labels: list[str], unit: str) -> None:
        self.labels, self.unit = labels, unit
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=err_console, transient=True)
        self.tasks: dict[int, TaskID] = {}

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: dict) -> None:
        index = event.get("model")
        if index is None:
            return
        label = escape(self.labels[index])
        if event["event"] == "loading":
            self.tasks[index] = self.progress.add_task(f"{label}: loading", total=None)
        elif event["event"] == "progress":
            self.progress.update(self.tasks[index], description=f"{label}: {self.unit}", completed=event["done"], total=event["total"])
        elif event["event"] == "result":
            self.progress.update(self.tasks[index], description=f"{label}: done")


@app.command("rouge")
def rouge(
    data: Annotated[str, typer.Argument(help="Held-out prompt/completion JSONL (e.g. from `tuneforge data from-hf`).")],
    model: Models,
    rows: Annotated[Optional[int], typer.Option("--rows", min=1, help="Use the first N rows (default: all).")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Most tokens generated per row (greedy).")] = DEFAULT_MAX_TOKENS,
    chat: Annotated[bool, typer.Option("--chat", help="Send each prompt as a user message in the chat template (default: raw, as fine-tuning trains).")] = False,
    show: Annotated[int, typer.Option("--show", min=0, help="Print this many example predictions.")] = 0,
    device: Device = "auto",
    dtype: Dtype = "auto",
    threads: Threads = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
    chart: Chart = None,
) -> None:
    """ROUGE-1/2/L (F-measure, mean over rows) of each model's greedy output against the references."""
    from tuneforge.evaluation import compare_rouge, load_prompt_rows

    held_out = load_prompt_rows(data, limit=rows)
    models, release = _resolve(model, device, dtype)
    try:
        with _Bars([m.label for m in models], "generating") as bars:
            result = compare_rouge(models, held_out, max_tokens=max_tokens, chat=chat, threads=threads, on_event=bars)
    finally:
        release()
    if chart is not None:
        from tuneforge.cli.charts import bars_png

        bars_png({name: {r.label: getattr(r.scores, name) for r in result.results} for name in ROUGE_TYPES}, chart,
                 title=f"ROUGE on {len(held_out)} rows of {Path(data).name}", ylabel="F-measure")
    if as_json:
        print_json(result.to_dict())
        return
    # a model label can be a 38-character id: the three scores fit beside it, the cost columns need --wide
    columns = [Column("Model", key=True), *(Column(h, right=True) for h in ("ROUGE-1", "ROUGE-2", "ROUGE-L")),
               Column("Tokens/row", wide=True, right=True), Column("Seconds", wide=True, right=True)]
    print_table(f"ROUGE on {len(held_out)} rows of {data} (greedy, at most {max_tokens} tokens{', chat template' if chat else ''})",
                columns, [(r.label, f"{r.scores.rouge1:.4f}", f"{r.scores.rouge2:.4f}", f"{r.scores.rougeL:.4f}",
                           f"{r.generated_tokens / len(held_out):.1f}", f"{r.seconds:.1f}") for r in result.results], wide=wide)
    for i, row in enumerate(held_out[:show]):
        console.print(f"[bold]row {i + 1}[/] reference: {escape(row.reference)}", highlight=False)
        for r in result.results:
            console.print(f"  [cyan]{escape(r.label)}[/]: {escape(r.predictions[i])}", highlight=False)
    if chart is not None:
        console.print(f"wrote {chart}")


@app.command("perplexity")
def perplexity(
    files: Annotated[list[Path], typer.Argument(help="Held-out text: {\"input\"} JSONL files, or PDF/Markdown/text documents (or directories).")],
    model: Models,
    max_length: Annotated[Optional[int], typer.Option("--max-length", min=2, help="Tokens per window (default: the trainer's, the model's context at most 1024).")] = None,
    device: Device = "auto",
    dtype: Dtype = "auto",
    threads: Threads = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
    chart: Chart = None,
) -> None:
    """Perplexity of each model on the same held-out text (lower is better)."""
    from tuneforge.evaluation import compare_perplexity, load_texts

    texts = load_texts(files)
    models, release = _resolve(model, device, dtype)
    try:
        with _Bars([m.label for m in models], "scoring windows") as bars:
            result = compare_perplexity(models, texts, max_length=max_length, threads=threads, on_event=bars)
    finally:
        release()
    if chart is not None:
        from tuneforge.cli.charts import bars_png

        bars_png({"perplexity": {r.label: r.perplexity for r in result.results}}, chart,
                 title=f"Perplexity on {len(texts)} held-out text(s)", ylabel="perplexity (lower is better)")
    if as_json:
        print_json(result.to_dict())
        return
    columns = [Column("Model", key=True), Column("Perplexity", right=True), Column("Loss (nats/token)", right=True),
               Column("Window", wide=True, right=True), Column("Seconds", wide=True, right=True)]
    print_table(f"Perplexity on {len(texts)} held-out text(s), {result.results[0].tokens:,} tokens predicted", columns,
                [(r.label, f"{r.perplexity:.3f}", f"{r.loss:.4f}", f"{r.max_length:,}", f"{r.seconds:.1f}") for r in result.results],
                wide=wide)
    if chart is not None:
        console.print(f"wrote {chart}")
