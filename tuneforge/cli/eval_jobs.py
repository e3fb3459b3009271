"""`tuneforge eval jobs create|get|list|report|stop`: evaluation jobs (Bedrock's CreateEvaluationJob and friends).

`create` takes the request as Bedrock's JSON (what `aws bedrock create-evaluation-job --cli-input-json` reads), so a
request file works unchanged against Bedrock and tuneforge. `get` shows the side-by-side table once the job is done;
`report` prints (or opens) the job's HTML report.
"""

from __future__ import annotations

import json
import webbrowser
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Optional

import typer

from tuneforge import storage
from tuneforge.cli.runtime import catalog, console, model_resolver, print_json, settings
from tuneforge.cli.tables import Column, WideFlag, detail_table, failure, print_table, when
from tuneforge.errors import InvalidInput
from tuneforge.evaluation.service import EvaluationService
from tuneforge.wire.evaluation import evaluation_job, evaluation_request, evaluation_summary

app = typer.Typer(help="Evaluation jobs: score models (several side by side) on your prompts.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print Bedrock's JSON shape instead of a table.")]
Identifier = Annotated[str, typer.Argument(help="Job name, id or ARN.")]


@lru_cache(maxsize=1)
def service() -> EvaluationService:
    return EvaluationService(settings(), catalog().sessions, model_resolver())


@app.command("create")
def create(request: Annotated[Path, typer.Argument(help="CreateEvaluationJob's request as JSON (jobName, roleArn, "
                                                       "evaluationConfig, inferenceConfig, outputDataConfig).")],
           as_json: JsonFlag = False) -> None:
    """Start an evaluation job from a request file."""
    try:
        params = json.loads(request.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{request}: not a readable JSON request ({exc})", field="REQUEST") from None
    missing = [k for k in ("jobName", "evaluationConfig", "inferenceConfig", "outputDataConfig") if k not in params]
    if missing:
        raise InvalidInput(f"{request}: the request has no {', '.join(missing)}", field="REQUEST")
    params.setdefault("roleArn", "arn:aws:iam::000000000000:role/tuneforge-evaluation")  # Bedrock needs one; none is assumed here
    row = service().create(evaluation_request(params))
    if as_json:
        print_json({"jobArn": row.job_arn})
    else:
        console.print(f"started evaluation job [bold]{row.job_name}[/] ({row.job_arn}); follow it with "
                      f"`tuneforge eval jobs get {row.job_name}`")


@app.command("get")
def get(job: Identifier, as_json: JsonFlag = False) -> None:
    """Show a job's status and, once done, each model's mean score for each metric."""
    row = service().get(job)
    if as_json:
        print_json({**evaluation_job(row), "summary": row.summary, "progress": row.progress})
        return
    progress = row.progress or {}
    fields = [("status", row.status), ("created", when(row.created_at))]
    if progress.get("total"):
        fields.append(("progress", f"{progress.get('phase')}: {progress.get('done', 0)}/{progress['total']}"))
    if row.summary.get("report"):
        fields.append(("report", row.summary["report"]))
    for message in row.failure_messages:
        fields.append(("failure", failure(message)))
    console.print(detail_table(f"{row.job_name}: {row.status}", fields))
    models = list((row.summary or {}).get("models", {}))
    if models:
        tasks = row.summary["models"][models[0]]
        rows = [(f"{task} · {metric}", *(_fmt(row.summary["models"][m][task].get(metric)) for m in models))
                for task, metrics in tasks.items() for metric in metrics]
        print_table("mean scores (0-1)", [Column("Metric", key=True), *(Column(m, right=True) for m in models)], rows, wide=True)


@app.command("list")
def list_jobs(status: Annotated[Optional[str], typer.Option(help="Only jobs with this status.")] = None,
              name_contains: Annotated[Optional[str], typer.Option(help="Only names containing this.")] = None,
              wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """List evaluation jobs, newest first."""
    found = service().list(status=status, name_contains=name_contains).jobs
    if as_json:
        print_json({"jobSummaries": [evaluation_summary(r) for r in found]})
        return
    columns = [Column("Name", key=True), Column("Status"), Column("Models", key=True), Column("Created")]
    rows = [(r.job_name, r.status, ", ".join(evaluation_summary(r)["modelIdentifiers"]), when(r.created_at)) for r in found]
    print_table(f"{len(found)} evaluation job(s)", columns, rows, wide=wide)


@app.command("report")
def report(job: Identifier, open_it: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False) -> None:
    """Print where the job's HTML report is (tables, charts, every prompt with each answer and the judge's reasons)."""
    row = service().get(job)
    uri = (row.summary or {}).get("report")
    if not uri or not storage.exists(uri):
        raise InvalidInput(f"evaluation job {row.job_name} is {row.status} and has no report yet: wait for Completed",
                           field="JOB")
    print(uri)
    if open_it and "://" not in uri.removeprefix("file://"):
        webbrowser.open(Path(uri.removeprefix("file://")).resolve().as_uri())


@app.command("stop")
def stop(job: Identifier) -> None:
    """Stop a running job (nothing is written for a stopped job)."""
    row = service().stop(job)
    console.print(f"evaluation job [bold]{row.job_name}[/] is {row.status}")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
