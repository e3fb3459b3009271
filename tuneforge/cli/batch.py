"""`tuneforge batch create|get|list|stop`: batch inference jobs (Bedrock's CreateModelInvocationJob and friends).

A job runs in its own process and outlives the command: it reads a JSONL file (or a folder of them) of
`{"recordId", "modelInput"}` records and writes `<file>.out` and `manifest.json.out` under `--output/<jobId>/`.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.live import Live

from tuneforge.batch.request import BatchJobRequest, InvocationType
from tuneforge.batch.service import BatchService, is_terminal
from tuneforge.batch.states import BatchStatus
from tuneforge.cli.runtime import catalog, console, model_resolver, print_json, settings
from tuneforge.cli.tables import Column, WideFlag, detail_table, failure, print_table, when
from tuneforge.errors import InvalidInput
from tuneforge.serving.custom_deployments import CustomModelDeployments
from tuneforge.wire.batch import job_detail, job_summary

app = typer.Typer(help="Batch inference: run a JSONL file of model requests through a model.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print Bedrock's JSON shape instead of a table.")]
Identifier = Annotated[str, typer.Argument(help="Job name, id or ARN.")]
POLL_SECONDS = 1.0
ROLE = "arn:aws:iam::000000000000:role/tuneforge-batch"  # Bedrock requires a role; locally none is assumed
_FLAGS = {"inputDataConfig.s3InputDataConfig.s3Uri": "--input", "outputDataConfig.s3OutputDataConfig.s3Uri": "--output",
          "modelId": "--model", "modelInvocationType": "--type", "timeoutDurationInHours": "--timeout-hours"}


@lru_cache(maxsize=1)
def service() -> BatchService:
    models = model_resolver()
    return BatchService(settings(), catalog().sessions, models, CustomModelDeployments(settings(), catalog().sessions, models))


def _location(value: str) -> str:
    """Local files become absolute paths (the job's process runs in another directory); a folder keeps its '/'."""
    if "://" in value:
        return value
    resolved = str(Path(value).expanduser().resolve())
    return resolved + "/" if value.endswith("/") or Path(resolved).is_dir() else resolved


def _tags(pairs: list[str]) -> tuple[tuple[str, str], ...]:
    tags = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--tag takes KEY=VALUE, got {pair!r}", field="--tag")
        tags.append((key, value))
    return tuple(tags)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Job name (unique).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Foundation model id, alias or ARN; custom model; provisioned model or custom model deployment.")],
    input_uri: Annotated[str, typer.Option("--input", "-i", help="A .jsonl file or a folder of them: local path, file:// or s3://.")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Where the job's folder goes (default: <home>/outputs/batch/).")] = None,
    invocation_type: Annotated[str, typer.Option("--type", help="InvokeModel (native bodies) or Converse.")] = InvocationType.INVOKE_MODEL.value,
    timeout_hours: Annotated[Optional[int], typer.Option("--timeout-hours", help="24-168; unprocessed records then stay undone.")] = None,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", help="KEY=VALUE (repeatable).")] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow its progress until it ends.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Start a batch inference job (it runs in its own process)."""
    request = BatchJobRequest(job_name=name, role_arn=ROLE, model_id=model, input_uri=_location(input_uri),
                              output_uri=_location(output or str(settings().home / "outputs" / "batch") + "/"),
                              invocation_type=invocation_type, timeout_hours=timeout_hours, tags=_tags(tag or []))
    try:
        row = service().create(request)
    except InvalidInput as exc:  # name this command's flag, not the API field
        flag = _FLAGS.get(exc.field or "")
        if flag is None:
            raise
        raise InvalidInput(exc.message.replace(f"{exc.field}: ", "", 1), field=flag) from exc
    if as_json:
        print_json({"jobArn": row.job_arn})
    else:
        console.print(f"started batch job [bold]{row.job_name}[/] ({row.job_arn})")
    if watch:
        _watch(row.job_arn)


def _detail_table(row):
    c = row.counts or {}
    fields: list[tuple[str, object]] = [("arn", row.job_arn), ("model", row.model_id), ("type", row.invocation_type),
                                        ("input", row.input_config.get("s3Uri")),
                                        ("output", row.output_config.get("s3Uri").rstrip("/") + f"/{row.job_id}/")]
    if (row.progress or {}).get("phase"):
        fields.append(("phase", row.progress["phase"]))
    total = c.get("totalRecordCount")
    if total is not None:
        done = c.get("processedRecordCount", 0)
        filled = int(30 * done / total) if total else 30
        fields.append(("records", f"{'█' * filled}{'░' * (30 - filled)} {done:,}/{total:,} "
                                  f"({c.get('successRecordCount', 0):,} ok, {c.get('errorRecordCount', 0):,} failed)"))
    if c.get("outputTokenCount") is not None:
        fields.append(("tokens", f"{c.get('inputTokenCount', 0):,} in, {c['outputTokenCount']:,} out"))
    fields += [("submitted", when(row.created_at)), ("ended", when(row.end_time))]
    if row.message:
        fields.append(("message", failure(row.message) if row.status == BatchStatus.FAILED else row.message))
    return detail_table(f"{row.job_name}: {row.status}", fields)


def _watch(identifier: str) -> None:
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            row = service().get(identifier)
            live.update(_detail_table(row))
            if is_terminal(row):
                break
            if service().reconcile():  # its process died: restarted or closed; keep watching
                continue
            time.sleep(POLL_SECONDS)
    if not console.is_terminal:
        console.line()  # off a terminal Live prints only its last frame, without the newline that ends it
    if row.status in (BatchStatus.FAILED, BatchStatus.EXPIRED):
        raise typer.Exit(1)


@app.command("get")
def get(
    job: Identifier,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow its progress until it ends.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show a job's status and record counts."""
    if watch:
        _watch(job)
        return
    row = service().get(job)
    if as_json:
        print_json({**job_detail(row), "progress": row.progress})
    else:
        console.print(_detail_table(row))


@app.command("list")
def list_jobs(
    status: Annotated[Optional[str], typer.Option(help="Only jobs with this status (InProgress, Completed, ...).")] = None,
    name_contains: Annotated[Optional[str], typer.Option(help="Only names containing this.")] = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """List batch jobs, newest first."""
    found = service().list(status=status, name_contains=name_contains).jobs
    if as_json:
        print_json({"invocationJobSummaries": [job_summary(r) for r in found]})
        return
    columns = [Column("Name", key=True), Column("Status"), Column("Records", right=True), Column("Failed", right=True),
               Column("Model", wide=True, key=True), Column("Submitted")]
    rows = [(r.job_name, r.status, f"{(r.counts or {}).get('processedRecordCount', 0):,}/{(r.counts or {}).get('totalRecordCount', 0):,}",
             f"{(r.counts or {}).get('errorRecordCount', 0):,}", r.model_id, when(r.created_at)) for r in found]
    print_table(f"{len(found)} batch job(s)", columns, rows, wide=wide)


@app.command("stop")
def stop(job: Identifier) -> None:
    """Stop a job: what finished is kept and written to its output folder."""
    row = service().stop(job)
    console.print(f"batch job [bold]{row.job_name}[/] is {row.status}")
