"""`tuneforge keys create|list|revoke` (API access keys) and `tuneforge audit` (the log of mutating API calls)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from tuneforge.cli.runtime import console, print_json, settings
from tuneforge.cli.tables import Column, WideFlag, print_table, when

app = typer.Typer(help="Access keys for the API server (SigV4 for boto3, bearer tokens for OpenAI clients).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _keys():
    from tuneforge.db import open_database
    from tuneforge.security.keys import AccessKeys

    current = settings()
    return AccessKeys(current, open_database(current.database_url))


@app.command("create")
def create(
    name: Annotated[Optional[str], typer.Option(help="A label to recognize the key by in `keys list` and `audit`.")] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="Allow only reads and invocations (Get*, List*, Invoke*, Converse*).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Issue a key. The secret is shown this once: store it (e.g. AWS_SECRET_ACCESS_KEY)."""
    issued = _keys().create(name=name, read_only=read_only)
    if as_json:
        print_json({"accessKeyId": issued.access_key_id, "secretAccessKey": issued.secret_access_key})
        return
    console.print(f"accessKeyId:     {issued.access_key_id}\nsecretAccessKey: {issued.secret_access_key}", highlight=False)
    console.print("The secret is not shown again. boto3: aws_access_key_id / aws_secret_access_key; "
                  "OpenAI clients: api_key=<secretAccessKey>.", style="dim")


@app.command("list")
def list_keys(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """List keys (never their secrets)."""
    keys = _keys().list()
    if as_json:
        print_json({"accessKeys": [{"accessKeyId": k.access_key_id, "name": k.name, "readOnly": k.read_only, "status": k.status,
                                    "createdAt": k.created_at.isoformat(),
                                    "revokedAt": k.revoked_at.isoformat() if k.revoked_at else None} for k in keys]})
        return
    columns = [Column("Access key id", key=True), Column("Name", key=True), Column("Access"), Column("Status"),
               Column("Created", wide=True), Column("Revoked", wide=True)]
    rows = [(k.access_key_id, k.name or "", "read-only" if k.read_only else "full", k.status, when(k.created_at),
             when(k.revoked_at)) for k in keys]
    print_table(f"{len(keys)} access key(s)", columns, rows, wide=wide)


@app.command("revoke")
def revoke(access_key_id: Annotated[str, typer.Argument(help="The key's id (AKIA...), from `tuneforge keys list`.")]) -> None:
    """Revoke a key: requests signed with it fail from now on (UnrecognizedClientException)."""
    info = _keys().revoke(access_key_id)
    console.print(f"revoked {info.access_key_id}")


def audit(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many of the newest events to show.")] = 50,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Show the newest mutating API calls: time, access key, operation, resource, status."""
    from tuneforge.db import open_database
    from tuneforge.security.audit import AuditLog

    events = AuditLog(open_database(settings().database_url)).recent(limit)
    if as_json:
        print_json({"events": [e.to_json() for e in events]})
        return
    # a 20-character key id leaves room for a time without its year, the HTTP status and an operation of up to 29
    # characters (longer ones get "…"); the year, the error code and the resource (an ARN) need --wide
    columns = [Column("Time (UTC)", key=True), Column("Access key", key=True), Column("Operation"),
               Column("Status" if wide else "HTTP"), Column("Resource", wide=True, key=True)]
    rows = [(f"{e.at:%Y-%m-%d %H:%M:%S}" if wide else f"{e.at:%m-%d %H:%M:%S}", e.access_key_id or "(no auth)",
             e.operation, f"{e.status_code} {e.error_code}" if e.error_code and wide else str(e.status_code),
             e.resource or "") for e in events]
    print_table(f"{len(events)} audit event(s), newest first", columns, rows, wide=wide)
