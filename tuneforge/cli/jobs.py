"""`tuneforge jobs create|get|list|stop|logs|metrics` and `tuneforge custom-models list|get|delete`."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.live import Live
from rich.table import Table

from tuneforge.cli.runtime import catalog, console, print_json, settings
from tuneforge.cli.tables import Column, WideFlag, customization, detail_table, failure, print_table, when
from tuneforge.errors import InvalidInput
from tuneforge.jobs.layout import JobOutputs
from tuneforge.jobs.service import JobService, is_terminal
from tuneforge.jobs.spec import JobRequest
from tuneforge.jobs.states import JobStatus
from tuneforge.processes.local import LOG_NAME
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.wire.jobs import job_detail, job_summary, model_detail, model_summary

app = typer.Typer(help="Fine-tuning and continued pre-training jobs.", no_args_is_help=True)
models_app = typer.Typer(help="Custom models made by jobs.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print Bedrock's JSON shape instead of a table.")]
POLL_SECONDS = 1.0


@lru_cache(maxsize=1)
def jobs() -> JobService:
    return JobService(settings(), catalog().sessions, catalog())


@lru_cache(maxsize=1)
def registry() -> CustomModelRegistry:
    return CustomModelRegistry(settings(), catalog().sessions)


def _hyperparameters(pairs: list[str]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--hyperparameter takes KEY=VALUE, got {pair!r}", field="--hyperparameter")
        parsed[key.strip()] = value.strip()
    return parsed


_FLAGS = {"trainingDataConfig": "--training-data", "validationDataConfig": "--validation-data", "hyperParameters": "--hyperparameter"}


def _location(value: str) -> str:
    """Local files become absolute paths: the job process may run in another directory."""
    return value if "://" in value else str(Path(value).expanduser().resolve())


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Job name (unique).")],
    base_model: Annotated[str, typer.Option("--base-model", "-m", help="Base model id, alias or ARN.")],
    training_data: Annotated[str, typer.Option("--training-data", "-t", help="JSONL file: local path, file:// or s3://.")],
    validation_data: Annotated[Optional[list[str]], typer.Option("--validation-data", help="Validation JSONL (repeatable).")] = None,
    customization_type: Annotated[str, typer.Option("--type", help="FINE_TUNING, CONTINUED_PRE_TRAINING or PREFERENCE_TUNING (DPO on chosen/rejected pairs).")] = "FINE_TUNING",
    custom_model_name: Annotated[Optional[str], typer.Option(help="Name of the model it makes (default: the job name).")] = None,
    output: Annotated[Optional[str], typer.Option(help="Where metrics go (default: <home>/outputs/).")] = None,
    hyperparameter: Annotated[Optional[list[str]], typer.Option("--hyperparameter", "-p", help="KEY=VALUE, Bedrock names (epochCount=1, learningRate=0.0001, ...).")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow its progress until it ends.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start a customization job (it runs in its own process and outlives this command)."""
    request = JobRequest(
        job_name=name, custom_model_name=custom_model_name or name, base_model_identifier=base_model,
        training_data_uri=_location(training_data), output_uri=_location(output or str(settings().home / "outputs")),
        customization_type=customization_type, validation_data_uris=tuple(_location(v) for v in validation_data or ()),
        hyperparameters=_hyperparameters(hyperparameter or []),
    )
    try:
        row = jobs().create(request)
    except InvalidInput as exc:  # name this command's flag, not the API field
        flag = _FLAGS.get((exc.field or "").split("[")[0].split(".")[0])
        if flag is None:
            raise
        raise InvalidInput(exc.message.replace(f"{exc.field}: ", "", 1), field=flag) from exc
    if as_json:
        print_json({"jobArn": row.job_arn})
    else:
        console.print(f"started job [bold]{row.job_name}[/] ({row.job_arn})")
    if watch:
        _watch(row.job_arn)


def _progress_table(row) -> Table:
    p = row.progress or {}
    fields: list[tuple[str, object]] = [
        ("stages", "  ".join(f"{k.removesuffix('Details')}={v['status']}" for k, v in row.status_details.items()))]
    if p.get("phase"):
        fields.append(("phase", str(p["phase"])))
    if p.get("totalSteps"):
        done, total = p.get("step", 0), p["totalSteps"]
        bar = "█" * int(30 * done / total) + "░" * (30 - int(30 * done / total))
        fields.append(("progress", f"{bar} step {done}/{total}, epoch {p.get('epoch', 0)}/{p.get('epochs')}"))
        fields.append(("training loss", f"{p.get('trainingLoss', float('nan')):.4f}"))
        if "rewardAccuracy" in p:  # preference tuning: the last step's pairs
            fields.append(("reward accuracy", f"{p['rewardAccuracy']:.1%} (margin {p.get('rewardMargin', float('nan')):.3f})"))
        if p.get("trainingTokens"):
            fields.append(("tokens trained", f"{p.get('tokensTrained', 0):,} of {p['trainingTokens']:,}"))
        fields.append(("tokens/s", f"{p.get('tokensPerSecond', 0):.0f}"))
        fields.append(("ETA", f"{p.get('etaSeconds', 0):.0f}s"))
    if p.get("splitRecords"):
        fields.append(("long records", f"{p['splitRecords']:,} split into {p['splitWindows']:,} windows of "
                                       f"{p['windowTokens']:,} tokens"))
    if p.get("maxSequenceLength"):
        fields.append(("training length", f"{p['maxSequenceLength']:,} tokens"))
    for key, chosen in (row.chosen_hyperparameters or {}).items():  # what "auto" became, and why
        fields.append((f"{key} (auto)", f"{chosen['value']}: {chosen['reason']}"))
    if row.training_loss is not None:
        fields.append(("final training loss", f"{row.training_loss:.4f}"))
    if row.validation_loss is not None:
        fields.append(("final validation loss", f"{row.validation_loss:.4f}"))
    if "validationRewardAccuracy" in p:
        fields.append(("validation reward accuracy", f"{p['validationRewardAccuracy']:.1%} "
                                                     f"(margin {p.get('validationRewardMargin', float('nan')):.3f})"))
    if row.output_model_arn:
        fields.append(("custom model", row.output_model_arn))
    if row.failure_message:
        fields.append(("failure", failure(row.failure_message)))
    return detail_table(f"{row.job_name}: {row.status}", fields)


def _watch(identifier: str) -> None:
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            row = jobs().get(identifier)
            live.update(_progress_table(row))
            if is_terminal(row):
                break
            if jobs().reconcile():  # its process died: restarted or failed; keep watching
                continue
            time.sleep(POLL_SECONDS)
    if not console.is_terminal:
        console.line()  # off a terminal Live prints only its last frame, without the newline that ends it
    if row.status == JobStatus.FAILED:
        raise typer.Exit(1)


@app.command("get")
def get(
    job: Annotated[str, typer.Argument(help="Job name, id or ARN.")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow its progress until it ends.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show a job's status, progress and results."""
    if watch:
        _watch(job)
        return
    row = jobs().get(job)
    if as_json:
        print_json({**job_detail(row), "progress": row.progress, "chosenHyperParameters": row.chosen_hyperparameters})
    else:
        console.print(_progress_table(row))


@app.command("list")
def list_jobs(
    status: Annotated[Optional[str], typer.Option(help="Only jobs with this status (InProgress, Completed, ...).")] = None,
    name_contains: Annotated[Optional[str], typer.Option(help="Only names containing this.")] = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    found = jobs().list(status=status, name_contains=name_contains).jobs
    if as_json:
        print_json({"modelCustomizationJobSummaries": [job_summary(r) for r in found]})
        return
    # the base model's id (up to 38 characters) and the custom model's name do not fit beside the job's name
    columns = [Column("Name", key=True), Column("Status"), Column("Type"), Column("Base model", wide=True, key=True),
               Column("Created"), Column("Custom model", wide=True, key=True)]
    rows = [(r.job_name, r.status, customization(r.customization_type, wide=wide), r.base_model_id, when(r.created_at),
             r.custom_model_name if r.output_model_arn else "") for r in found]
    print_table(f"{len(found)} job(s)", columns, rows, wide=wide)


@app.command("stop")
def stop(job: Annotated[str, typer.Argument(help="Job name, id or ARN.")]) -> None:
    """Stop a running job: it checkpoints and exits within seconds (or is killed)."""
    row = jobs().stop(job)
    console.print(f"job [bold]{row.job_name}[/] is {row.status}")


@app.command("logs")
def logs(
    job: Annotated[str, typer.Argument(help="Job name, id or ARN.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
) -> None:
    """Print the job's log."""
    row = jobs().get(job)
    path = Path(row.work_dir) / LOG_NAME
    position = 0
    while True:
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(position)
                chunk = handle.read()
                position += len(chunk)
                typer.echo(chunk.decode(errors="replace"), nl=False)
        if not follow or is_terminal(jobs().get(job)):
            break
        time.sleep(POLL_SECONDS)


@app.command("metrics")
def metrics(
    job: Annotated[str, typer.Argument(help="Job name, id or ARN.")],
    png: Annotated[Optional[Path], typer.Option(help="Also write the loss curves to this PNG file (needs matplotlib).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Draw the training (and validation) loss curves, and reward accuracy for preference tuning."""
    row = jobs().get(job)
    training, validation = JobOutputs(Path(row.work_dir), row.output_uri, row.job_id).metrics()
    if as_json:
        print_json({"training": training, "validation": validation})
        return
    if not training:
        console.print("no metrics yet: the job has not finished a training step")
        return
    from tuneforge.cli.charts import loss_chart

    console.print(loss_chart(training, validation, title=f"{row.job_name} loss"))
    if png is not None:
        from tuneforge.cli.charts import loss_png

        loss_png(training, validation, png, title=f"{row.job_name} loss")
        console.print(f"wrote {png}")


@models_app.command("list")
def list_models(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """List custom models, newest first."""
    found = registry().list().models
    if as_json:
        print_json({"modelSummaries": [model_summary(r, catalog().get(r.base_model_id).model_name) for r in found]})
        return
    columns = [Column("Name", key=True), Column("Status"), Column("Type"), Column("Base model", wide=True, key=True),
               Column("Training loss", right=True), Column("Created")]
    rows = [(r.model_name, r.model_status, customization(r.customization_type, wide=wide), r.base_model_id,
             f"{r.training_loss:.4f}" if r.training_loss is not None else "", when(r.created_at)) for r in found]
    print_table(f"{len(found)} custom model(s)", columns, rows, wide=wide)


@models_app.command("get")
def get_model(model: Annotated[str, typer.Argument(help="Model name, id or ARN.")], as_json: JsonFlag = False) -> None:
    """Show a custom model."""
    row = registry().get(model)
    detail = model_detail(row)
    if as_json:
        print_json(detail)
        return
    console.print(detail_table(row.model_name, [*detail.items(), ("artifacts", f"{row.artifact_kind} at {row.artifact_dir}")]))


@models_app.command("delete")
def delete_model(model: Annotated[str, typer.Argument(help="Model name, id or ARN.")]) -> None:
    """Delete a custom model and its weights."""
    registry().delete(model)
    console.print(f"deleted {model}")
