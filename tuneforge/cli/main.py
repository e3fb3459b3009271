"""The `tuneforge` command: one Typer app; each command group lives in its own module."""

from __future__ import annotations

import sys

import typer

from tuneforge import __version__
from tuneforge.cli import batch, chat, custom_deployments, data, deployments, eval, invoke, jobs, kb, keys, models, serve
from tuneforge.cli.runtime import report
from tuneforge.errors import TuneforgeError

app = typer.Typer(
    name="tuneforge",
    help="Customize open-weight models on your own hardware: catalog, fine-tuning, serving, knowledge bases.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.add_typer(jobs.app, name="jobs")
app.add_typer(jobs.models_app, name="custom-models")
app.add_typer(deployments.app, name="deployments")
app.add_typer(custom_deployments.app, name="custom-deployments")
app.add_typer(batch.app, name="batch")
app.add_typer(data.app, name="data")
app.add_typer(eval.app, name="eval")
app.add_typer(kb.app, name="kb")
app.command("invoke")(invoke.invoke)
app.command("chat")(chat.chat)
app.command("serve")(serve.serve)
app.command("console")(serve.open_console)
app.add_typer(keys.app, name="keys")
app.command("audit")(keys.audit)


@app.command()
def version() -> None:
    """Print the tuneforge version."""
    print(__version__)


def main() -> None:
    try:
        app()
    except TuneforgeError as exc:
        sys.exit(report(exc))


if __name__ == "__main__":
    main()
