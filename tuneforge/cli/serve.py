"""`tuneforge serve`: the HTTP server (Bedrock's REST API) on one port."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tuneforge.cli.runtime import console, settings


def serve(
    host: Annotated[Optional[str], typer.Option(help="Interface to listen on (default TUNEFORGE_HOST or 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="Port (default TUNEFORGE_PORT or 8000).")] = None,
) -> None:
    """Serve Bedrock's REST API so boto3 code works with endpoint_url=http://HOST:PORT."""
    import uvicorn

    from tuneforge.api.app import build_app

    current = settings()
    host, port = host or current.host, port or current.port
    console.print(f"tuneforge serving Bedrock's API on http://{host}:{port} (data: {current.home})")
    uvicorn.run(build_app(current), host=host, port=port, log_level="info")
