"""`tuneforge data from-hf|from-docs|validate`: build customization data sets and check them, without torch.

    tuneforge data from-hf /work/shared/data/dialogsum/train.jsonl --select 1000 --completion-field summary \\
        --prompt-template 'Summarize the simplest and most interesting part of the following conversation.\\n\\n{dialogue}\\n\\nSummary: ' \\
        --out train.jsonl
    tuneforge data from-docs book.pdf --out cpt.jsonl
    tuneforge data validate train.jsonl --kind fine-tuning

In --prompt-template, \\n, \\t, \\r and \\\\ are decoded (a shell passes them through single quotes as two
characters); a template with real newlines works too ($'...' in bash, or --prompt-template-file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tuneforge.catalog.builtin import DEFAULT_MODEL_ID
from tuneforge.cli.runtime import console, err_console, model_resolver, print_json, settings
from tuneforge.cli.tables import Column, WideFlag, print_table
from tuneforge.errors import InvalidInput

app = typer.Typer(help="Build and check fine-tuning and continued pre-training data sets.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
ModelOption = Annotated[str, typer.Option("--model", "-m", help="Whose tokenizer counts tokens: a catalog or custom model.")]
KINDS = {"fine-tuning": "FINE_TUNING", "continued-pre-training": "CONTINUED_PRE_TRAINING", "preference": "PREFERENCE_TUNING"}


def _progress() -> Progress:
    # on stderr, so stdout carries only the result (and --json stays one JSON document)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True)


def _token_counter(model: str):
    from tuneforge.data.model_tokens import model_token_counter
    from tuneforge.models.resolve import LOADABLE

    resolver = model_resolver()
    return model_token_counter(resolver.base_spec(resolver.resolve(model, kinds=LOADABLE, field="--model")))


@app.command("from-hf")
def from_hf(
    source: Annotated[str, typer.Argument(help="A saved dataset directory, a .jsonl/.json/.csv/.parquet file, or a hub id (online).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the training JSONL goes.")],
    completion_field: Annotated[str, typer.Option("--completion-field", help="The column the model learns to write.")],
    prompt_template: Annotated[Optional[str], typer.Option("--prompt-template", help="str.format template over columns, e.g. '...{dialogue}...'; \\n and \\t are decoded.")] = None,
    prompt_template_file: Annotated[Optional[Path], typer.Option("--prompt-template-file", help="Read the template from this file (taken as is).")] = None,
    select: Annotated[Optional[int], typer.Option(help="Keep the first N rows.")] = None,
    sample: Annotated[Optional[int], typer.Option(help="Then draw N rows at random (seeded).")] = None,
    shuffle: Annotated[bool, typer.Option("--shuffle", help="Shuffle the records (seeded).")] = False,
    seed: Annotated[int, typer.Option(help="Seed for --sample and --shuffle.")] = 42,
    validation_fraction: Annotated[float, typer.Option("--validation-fraction", help="Move this fraction of the records (the last ones) to --validation-out.")] = 0.0,
    validation_out: Annotated[Optional[Path], typer.Option("--validation-out", help="Where the validation JSONL goes.")] = None,
    split: Annotated[str, typer.Option(help="Split of a dataset dict or hub dataset.")] = "train",
    as_json: JsonFlag = False,
) -> None:
    """Table rows -> {"prompt", "completion"} records for fine-tuning.

    The template is Python's str.format over the columns: {dialogue} is the row's dialogue, {{ and }} are literal
    braces. In --prompt-template the escapes \\n, \\t, \\r and \\\\ are decoded, since shells pass them literally
    inside single quotes; real newlines ($'...' in bash) and --prompt-template-file (read as is) work too.
    """
    from tuneforge.data.from_table import PromptTemplate, decode_escapes, load_table, table_to_records, write_jsonl

    if (prompt_template is None) == (prompt_template_file is None):
        raise InvalidInput("give the prompt template with --prompt-template or --prompt-template-file (one of them)", field="--prompt-template")
    if validation_fraction and validation_out is None:
        raise InvalidInput("--validation-fraction needs --validation-out: where the held-out records go", field="--validation-out")
    if validation_out is not None and not validation_fraction:
        raise InvalidInput("--validation-out needs --validation-fraction (e.g. 0.1)", field="--validation-fraction")
    if prompt_template_file is not None:
        text = prompt_template_file.read_text(encoding="utf-8")
        option = "--prompt-template-file"
    else:
        text, option = decode_escapes(prompt_template or ""), "--prompt-template"
    with err_console.status(f"reading {source}"):
        table = load_table(source, offline=settings().offline, split=split)
    template = PromptTemplate.parse(text, columns=list(table.column_names), option=option)
    with _progress() as progress:
        task = progress.add_task("converting rows", total=None)
        conversion = table_to_records(
            table, template, completion_field=completion_field, select=select, sample=sample, shuffle=shuffle, seed=seed,
            validation_fraction=validation_fraction, progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if not conversion.training:
        raise InvalidInput(f"no record left to write: all {conversion.skipped_count} selected rows were skipped "
                           f"({conversion.skipped[0][1] if conversion.skipped else 'none selected'})", field="SOURCE")
    written = write_jsonl(conversion.training, out)
    held_out = write_jsonl(conversion.validation, validation_out) if validation_out is not None else 0
    summary = {"source": source, "sourceRows": conversion.source_rows, "training": {"path": str(out), "records": written},
               "validation": {"path": str(validation_out), "records": held_out} if validation_out else None,
               "skipped": conversion.skipped_count, "skippedRows": [{"row": r, "reason": why} for r, why in conversion.skipped]}
    if as_json:
        print_json(summary)
        return
    console.print(f"wrote {written:,} training records to [bold]{out}[/]" + (f" and {held_out:,} validation records to [bold]{validation_out}[/]" if validation_out else ""))
    if conversion.skipped_count:
        first = escape(", ".join(f"row {r} ({why})" for r, why in conversion.skipped[:5]))
        console.print(f"[yellow]skipped {conversion.skipped_count:,} row(s)[/]: {first}{' ...' if conversion.skipped_count > 5 else ''}")


@app.command("from-docs")
def from_docs(
    paths: Annotated[list[Path], typer.Argument(help="PDF, Markdown, text, HTML or DOCX files, or directories of them.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the {\"input\"} JSONL goes.")],
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", help="Tokens per chunk (default: the model's training length - 1 for EOS).")] = None,
    overlap_tokens: Annotated[Optional[int], typer.Option("--overlap-tokens", help="Tokens of whole sentences repeated from the previous chunk (default: 10% of --max-tokens).")] = None,
    model: ModelOption = DEFAULT_MODEL_ID,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Documents -> {"input"} records for continued pre-training, chunked by the model's tokenizer."""
    from tuneforge.data.from_docs import documents_to_records, expand_paths
    from tuneforge.data.from_table import write_jsonl
    from tuneforge.training.lengths import training_length

    files = expand_paths(paths)  # a missing path fails before the tokenizer is loaded
    with err_console.status(f"loading the tokenizer of {model}"):
        count, context = _token_counter(model)
    # one chunk per training row by default (EOS appended); longer chunks are fine too, the trainer splits them
    limit = training_length("CONTINUED_PRE_TRAINING", context=context, max_sequence_length=None) - 1
    with _progress() as progress:
        task = progress.add_task("parsing and chunking", total=len(files))
        conversion = documents_to_records(files, count_tokens=count, max_tokens=max_tokens or limit, overlap_tokens=overlap_tokens,
                                          progress=lambda done, total, name: progress.update(task, completed=done, description=name))
    written = write_jsonl(conversion.records, out)
    if as_json:
        print_json({"path": str(out), "records": written, "tokens": conversion.tokens, "maxTokens": max_tokens or limit,
                    "documents": [vars(d) for d in conversion.documents]})
        return
    columns = [Column("Document", key=True), Column("Format", wide=True), Column("Pages", right=True),
               Column("Chunks", right=True), Column("Tokens", right=True)]
    print_table(f"{written:,} records, {conversion.tokens:,} tokens -> {out}", columns,
                [(d.path, d.format, str(d.pages or ""), f"{d.chunks:,}", f"{d.tokens:,}") for d in conversion.documents], wide=wide)
    for d in conversion.documents:
        for warning in d.warnings:
            console.print(f"[yellow]warning[/] {escape(d.path)}: {escape(warning)}", highlight=False)


@app.command("validate")
def validate(
    file: Annotated[str, typer.Argument(help="A JSONL data file: local path, file:// or s3://.")],
    kind: Annotated[str, typer.Option("--kind", help="fine-tuning, continued-pre-training or preference (DPO pairs).")] = "fine-tuning",
    model: ModelOption = DEFAULT_MODEL_ID,
    max_sequence_length: Annotated[Optional[int], typer.Option("--max-sequence-length", min=2, help="The job's maxSequenceLength (default: fine-tuning fits the longest record up to the model's context; pre-training rows of 1024).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="For the step estimate.")] = 8,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="For the step estimate.")] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Run the job validator on one file: its size in records, tokens and steps, and every problem by line."""
    from tuneforge.data import DatasetKind, validate_dataset
    from tuneforge.training.lengths import record_limit, training_length

    if kind not in KINDS:
        raise InvalidInput(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}", field="--kind")
    dataset_kind = DatasetKind(KINDS[kind])
    with err_console.status(f"loading the tokenizer of {model}"):
        count, context = _token_counter(model)
    if max_sequence_length is not None and max_sequence_length > context:  # the job would fail on it too
        raise InvalidInput(f"--max-sequence-length {max_sequence_length:,} is longer than {model}'s context of {context:,} "
                           f"tokens: use at most {context:,}", field="--max-sequence-length")
    limit = record_limit(dataset_kind, context=context, max_sequence_length=max_sequence_length, base_model_id=model,
                         batch_size=batch_size)
    window = training_length(dataset_kind, context=context, max_sequence_length=max_sequence_length)
    with _progress() as progress:
        task = progress.add_task("validating (bytes)", total=None)
        report = validate_dataset(file, dataset_kind, count_tokens=count, limit=limit,
                                  window=window if dataset_kind == DatasetKind.CONTINUED_PRE_TRAINING else None,
                                  progress=lambda done: progress.update(task, completed=done))
    # what the trainer will use: fine-tuning grows to the longest record (within the limit checked above)
    max_len = training_length(dataset_kind, context=context, max_sequence_length=max_sequence_length,
                              longest=min(report.max_record_tokens, context) or None)
    summary = report.summary(batch_size, epochs)
    if as_json:
        print_json({**summary, "ok": report.ok, "maxSequenceLength": max_len, "problemCount": report.problem_count,
                    "problems": [{"line": p.line, "field": p.field, "message": p.message} for p in report.problems]})
    else:
        table = Table(show_header=False, title=f"{file} ({kind}, {model})")
        table.add_row("records", f"{summary['records']:,}")
        limit_text = f"limit {limit.tokens:,}: {limit.source}" if limit else "no limit: long records are split"
        table.add_row("tokens", f"{summary['tokens']:,} (longest record {summary['max_record_tokens']:,}, {limit_text})")
        table.add_row("training length", f"{max_len:,} tokens a row")
        if report.split_records:
            table.add_row("split", f"{report.split_records:,} records longer than a row, into {report.split_windows:,} windows")
        table.add_row("steps", f"{summary['steps']:,} (batch size {batch_size}, {epochs} epoch{'s' if epochs > 1 else ''})")
        table.add_row("result", "[green]valid[/]" if report.ok else f"[red]{report.problem_count:,} problem(s)[/]")
        console.print(table)
        for problem in report.problems:
            console.print(f"[red]{escape(str(problem))}[/]", highlight=False, soft_wrap=True)
        if report.problem_count > len(report.problems):
            console.print(f"... and {report.problem_count - len(report.problems):,} more", highlight=False)
    if not report.ok:
        raise typer.Exit(2)
