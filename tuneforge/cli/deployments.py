"""`tuneforge deployments create|get|list|update|delete`: provisioned throughput.

These commands write the records; the running `tuneforge serve` for the same data directory loads the workers
(one per model unit), health-checks them and sets the status InService. `--wait` follows that.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Annotated, Optional

import typer
from rich.live import Live
from rich.table import Table

from tuneforge.cli.runtime import catalog, console, err_console, print_json, settings
from tuneforge.cli.tables import Column, WideFlag, detail_table, failure, print_table, when
from tuneforge.errors import Unavailable
from tuneforge.serving.deployments import SETTLING, DeploymentService, DeploymentStatus
from tuneforge.wire.deployments import deployment_detail, deployment_summary

app = typer.Typer(help="Provisioned throughput: serve base or custom models on N workers (model units).", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print Bedrock's JSON shape instead of a table.")]
WaitFlag = Annotated[bool, typer.Option("--wait", "-w", help="Wait until it is InService (or Failed).")]
POLL_SECONDS = 1.0


@lru_cache(maxsize=1)
def deployments() -> DeploymentService:
    from tuneforge.cli.jobs import registry

    return DeploymentService(settings(), catalog().sessions, catalog(), registry())


def server_url() -> str:
    s = settings()
    return f"http://{s.host}:{s.port}"


def server_running() -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{server_url()}/health", timeout=2):
            return True
    except OSError:
        return False


def _warn_without_server() -> None:
    if not server_running():
        err_console.print(f"[yellow]no tuneforge server answers at {server_url()}: start `tuneforge serve` to load the "
                          "workers (the deployment stays Creating/Updating until one runs)[/]")


def _table(row) -> Table:
    return detail_table(f"{row.provisioned_model_name}: {row.status}",
                        [(k, failure(str(v)) if k == "failureMessage" else v) for k, v in deployment_detail(row).items()])


def _wait(identifier: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with Live(console=console, refresh_per_second=4) as live:
        while True:
            row = deployments().get(identifier)
            live.update(_table(row))
            if row.status not in SETTLING:
                break
            if time.monotonic() > deadline:
                raise Unavailable(f"{row.provisioned_model_name} is still {row.status} after {timeout:.0f}s: is `tuneforge serve` running?")
            time.sleep(POLL_SECONDS)
    if not console.is_terminal:
        console.line()  # off a terminal Live prints only its last frame, without the newline that ends it
    if row.status == DeploymentStatus.FAILED:
        raise typer.Exit(1)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Provisioned model name (unique).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Base or custom model: id, name or ARN.")],
    units: Annotated[int, typer.Option("--units", "-u", help="Model units: worker processes, each with a copy of the model.")] = 1,
    commitment: Annotated[Optional[str], typer.Option(help="OneMonth or SixMonths (recorded, as in Bedrock).")] = None,
    wait: WaitFlag = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits.")] = 600.0,
    as_json: JsonFlag = False,
) -> None:
    """Deploy a model on N model units."""
    row = deployments().create(name=name, model_id=model, units=units, commitment=commitment)
    if as_json:
        print_json({"provisionedModelArn": row.provisioned_model_arn})
    else:
        console.print(f"created [bold]{row.provisioned_model_name}[/] ({row.provisioned_model_arn}), {row.status}")
    _warn_without_server()
    if wait:
        _wait(row.provisioned_model_arn, timeout)


@app.command("get")
def get(identifier: Annotated[str, typer.Argument(help="Name, id or ARN.")], as_json: JsonFlag = False) -> None:
    """Show a provisioned model."""
    row = deployments().get(identifier)
    if as_json:
        print_json(deployment_detail(row))
    else:
        console.print(_table(row))


@app.command("list")
def list_deployments(
    status: Annotated[Optional[str], typer.Option(help="Creating, InService, Updating or Failed.")] = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """List provisioned models, newest first."""
    found = deployments().list(status=status).deployments
    if as_json:
        print_json({"provisionedModelSummaries": [deployment_summary(r) for r in found]})
        return
    # the model is a foundation model id (up to 38 characters), twice during an update: --wide
    columns = [Column("Name", key=True), Column("Status"), Column("Model", wide=True, key=True), Column("Units"),
               Column("Created")]
    rows = []
    for r in found:
        model = r.model_arn.rsplit("/", 1)[-1] + ("" if r.desired_model_arn == r.model_arn else f" -> {r.desired_model_arn.rsplit('/', 1)[-1]}")
        units = str(r.model_units) + ("" if r.desired_model_units == r.model_units else f" -> {r.desired_model_units}")
        rows.append((r.provisioned_model_name, r.status, model, units, when(r.created_at)))
    print_table(f"{len(found)} provisioned model(s)", columns, rows, wide=wide)


@app.command("update")
def update(
    identifier: Annotated[str, typer.Argument(help="Name, id or ARN.")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Re-point to this model (the same base, or a custom model of it).")] = None,
    units: Annotated[Optional[int], typer.Option("--units", "-u", help="Scale to this many model units.")] = None,
    name: Annotated[Optional[str], typer.Option(help="Rename.")] = None,
    wait: WaitFlag = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits.")] = 600.0,
) -> None:
    """Re-point, scale or rename a provisioned model."""
    if model is None and units is None and name is None:
        raise typer.BadParameter("give --model, --units or --name", param_hint="--model")
    row = deployments().update(identifier, name=name, model_id=model, units=units)
    console.print(f"[bold]{row.provisioned_model_name}[/] is {row.status}")
    if row.status == DeploymentStatus.UPDATING:
        _warn_without_server()
    if wait:
        _wait(row.provisioned_model_arn, timeout)


@app.command("delete")
def delete(identifier: Annotated[str, typer.Argument(help="Name, id or ARN.")]) -> None:
    """Delete a provisioned model; the server stops its workers."""
    deployments().delete(identifier)
    console.print(f"deleted {identifier}")
