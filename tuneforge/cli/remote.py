"""Talking to the running `tuneforge serve` from the CLI: provisioned models live in the server's workers.

Credentials: boto3's usual chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile) when it has some;
otherwise the CLI's own key for this data directory ("tuneforge-cli", issued on first use). Whoever can read the
data directory can already read every key, so this adds no access; it spares a local user the key dance.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tuneforge import errors
from tuneforge.cli.runtime import settings

_ERRORS = {
    "ValidationException": errors.InvalidInput,
    "ResourceNotFoundException": errors.NotFound,
    "ThrottlingException": errors.Throttled,
    "ModelNotReadyException": errors.ModelNotReady,
    "AccessDeniedException": errors.AccessDenied,
    "ConflictException": errors.Conflict,
}


def runtime_client():
    import boto3
    from botocore.config import Config

    s = settings()
    session = boto3.Session(region_name=s.region)
    credentials = {} if session.get_credentials() else _local_key()
    return session.client(
        "bedrock-runtime", endpoint_url=f"http://{s.host}:{s.port}", config=Config(retries={"max_attempts": 8, "mode": "standard"}),
        **credentials,
    )


CLI_KEY_NAME = "tuneforge-cli"


def _local_key() -> dict[str, str]:
    from tuneforge.cli.runtime import catalog
    from tuneforge.security.keys import AccessKeys

    keys = AccessKeys(settings(), catalog().sessions)
    for info in keys.list():
        if info.name == CLI_KEY_NAME and info.status == "Active" and not info.read_only:
            active = keys.lookup(info.access_key_id)
            if active is not None:
                return {"aws_access_key_id": active.access_key_id, "aws_secret_access_key": active.secret}
    issued = keys.create(name=CLI_KEY_NAME)
    return {"aws_access_key_id": issued.access_key_id, "aws_secret_access_key": issued.secret_access_key}


@contextmanager
def server_errors() -> Iterator[None]:
    """botocore's errors as ours, so the CLI prints them like any other."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    s = settings()
    try:
        yield
    except EndpointConnectionError:
        raise errors.Unavailable(f"no tuneforge server at http://{s.host}:{s.port}: provisioned models are served by "
                                 "`tuneforge serve` (set TUNEFORGE_HOST/TUNEFORGE_PORT if it runs elsewhere)") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise _ERRORS.get(error.get("Code"), errors.Unavailable)(error.get("Message") or str(exc)) from None
