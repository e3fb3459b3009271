"""`tuneforge serve`: the HTTP server (Bedrock's REST API, the OpenAI API, the web console, /metrics, /health) on one
port; `tuneforge console` opens the console of a running server in a browser."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tuneforge.cli.runtime import console, settings


def serve(
    host: Annotated[Optional[str], typer.Option(help="Interface to listen on (default TUNEFORGE_HOST or 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="Port (default TUNEFORGE_PORT or 8000).")] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth",
        help="Accept unsigned requests from anyone who can reach the port. Only for local experiments on 127.0.0.1; "
             "anything shared (another user, a container network, a team) should keep authentication on and use "
             "keys from `tuneforge keys create`.",
    )] = False,
) -> None:
    """Serve Bedrock's REST API (boto3 with endpoint_url=http://HOST:PORT) and the OpenAI API (/v1).

    By default every call must be authenticated with a key from `tuneforge keys create`: boto3 signs with it
    (SigV4), OpenAI clients send its secret as the API key. /health and /metrics are open.
    """
    import uvicorn

    from tuneforge.api.app import build_app

    current = settings()
    if no_auth:
        current = current.model_copy(update={"auth": False})
    host, port = host or current.host, port or current.port
    mode = "[bold red]authentication OFF[/]" if not current.auth else "signed requests only (tuneforge keys create)"
    console.print(f"tuneforge serving Bedrock's and OpenAI's APIs on http://{host}:{port} (data: {current.home}); {mode}")
    console.print(f"web console: http://{host}:{port}/console/")
    if not current.auth and host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[bold red]warning:[/] --no-auth on {host} lets anyone who can reach this port create jobs and delete models")
    uvicorn.run(build_app(current), host=host, port=port, log_level="info")


def open_console(
    host: Annotated[Optional[str], typer.Option(help="The server's host (default TUNEFORGE_HOST or 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="The server's port (default TUNEFORGE_PORT or 8000).")] = None,
) -> None:
    """Open the web console of a running `tuneforge serve` in a browser (and print its URL)."""
    import webbrowser

    current = settings()
    url = f"http://{host or current.host}:{port or current.port}/console/"
    console.print(f"tuneforge console: {url} (sign in with a key from `tuneforge keys create`)")
    if not webbrowser.open(url):
        console.print("no browser could be started here: open the URL above yourself")
