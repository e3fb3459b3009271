"""`tuneforge custom-deployments create|get|list|update|delete`: on-demand custom model deployments.

A deployment is Active as soon as it is created: the running `tuneforge serve` loads its custom model on the first
request to the deployment's ARN (`tuneforge invoke ARN ...` or boto3's InvokeModel).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Optional

import typer

from tuneforge.cli.runtime import catalog, console, model_resolver, print_json, settings
from tuneforge.cli.tables import Column, WideFlag, detail_table, failure, print_table, when
from tuneforge.serving.custom_deployments import CustomModelDeployments
from tuneforge.wire.deployments import custom_deployment_detail, custom_deployment_summary

app = typer.Typer(help="On-demand custom model deployments: invoke a custom model with no dedicated units.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print Bedrock's JSON shape instead of a table.")]
Identifier = Annotated[str, typer.Argument(help="Name, id or ARN.")]


@lru_cache(maxsize=1)
def service() -> CustomModelDeployments:
    return CustomModelDeployments(settings(), catalog().sessions, model_resolver())


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Deployment name (unique).")],
    model: Annotated[str, typer.Option("--model", "-m", help="An Active custom model: name, id or ARN.")],
    description: Annotated[Optional[str], typer.Option(help="Free text.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Deploy a custom model on demand."""
    row = service().create(name=name, model_arn=model, description=description)
    if as_json:
        print_json({"customModelDeploymentArn": row.deployment_arn})
    else:
        console.print(f"created [bold]{row.deployment_name}[/] ({row.deployment_arn}), {row.status}: invoke it by that ARN")


@app.command("get")
def get(identifier: Identifier, as_json: JsonFlag = False) -> None:
    """Show a deployment."""
    row = service().get(identifier)
    detail = custom_deployment_detail(row)
    if as_json:
        print_json(detail)
    else:
        console.print(detail_table(f"{row.deployment_name}: {row.status}",
                                   [(k, failure(str(v)) if k == "failureMessage" else v) for k, v in detail.items()]))


@app.command("list")
def list_deployments(
    status: Annotated[Optional[str], typer.Option(help="Creating, Active or Failed.")] = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """List deployments, newest first."""
    found = service().list(status=status).deployments
    if as_json:
        print_json({"modelDeploymentSummaries": [custom_deployment_summary(r) for r in found]})
        return
    columns = [Column("Name", key=True), Column("Status"), Column("Custom model", key=True), Column("ARN", wide=True), Column("Created")]
    rows = [(r.deployment_name, r.status, r.model_arn.rsplit("/", 1)[-1], r.deployment_arn, when(r.created_at)) for r in found]
    print_table(f"{len(found)} custom model deployment(s)", columns, rows, wide=wide)


@app.command("update")
def update(identifier: Identifier,
           model: Annotated[str, typer.Option("--model", "-m", help="Re-point to this custom model (same base).")]) -> None:
    """Serve another custom model of the same base from this deployment."""
    row = service().update(identifier, model_arn=model)
    console.print(f"[bold]{row.deployment_name}[/] now serves {row.model_arn}")


@app.command("delete")
def delete(identifier: Identifier) -> None:
    """Delete a deployment."""
    service().delete(identifier)
    console.print(f"deleted {identifier}")
