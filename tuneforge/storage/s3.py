"""S3Store: the object-store interface over S3 or any S3-compatible server (MinIO, moto, ...), via boto3.

Configuration is boto3's own: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, credentials (env, profile, instance
role), AWS_MAX_ATTEMPTS / AWS_RETRY_MODE. The region comes from AWS_REGION, AWS_DEFAULT_REGION, the
profile, else us-east-1 (botocore alone ignores AWS_REGION). One client per process and configuration.

Reads stream the response body; writes spool to a temp file (memory up to 8 MiB, then $TMPDIR, which must
hold the whole object) and upload only when the block succeeds, multipart above 8 MiB. Every botocore
error leaves this module as a tuneforge error.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)
from s3transfer import exceptions as transfer_errors

from tuneforge.errors import AccessDenied, InvalidInput, NotFound, Throttled, TuneforgeError, Unavailable
from tuneforge.storage._uri import Location, ObjectInfo
from tuneforge.storage.local import LocalStore

_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_READ_BUFFER = 1024 * 1024
_NOT_FOUND = ("NoSuchKey", "404", "NotFound")
# Env vars that change which client we need; part of the cache key so tests and re-configured processes
# get a fresh client instead of one pointing at the old endpoint.
_ENV_KEYS = (
    "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
)


def get_client() -> Any:
    """The cached S3 client for the current environment (creating one costs ~100 ms)."""
    # The pid is in the key because a client's connection pool must not be shared across fork().
    try:
        return _client_for(os.getpid(), tuple(os.environ.get(k) for k in _ENV_KEYS))
    except ProfileNotFound as exc:
        raise InvalidInput(f"{exc}: set AWS_PROFILE to a profile in ~/.aws/config, or unset it", field="AWS_PROFILE") from exc
    except ValueError as exc:  # botocore rejects a malformed endpoint URL with a bare ValueError
        raise InvalidInput(f"cannot create the S3 client: {exc}: fix AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL") from exc


def clear_client_cache() -> None:
    _client_for.cache_clear()


@lru_cache(maxsize=8)
def _client_for(pid: int, env: tuple[str | None, ...]) -> Any:
    session = boto3.session.Session()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or session.region_name or "us-east-1"
    # Fail over in seconds, not the 60 s botocore default, when an endpoint is unreachable. "standard"
    # retries (3 attempts, throttling-aware) unless AWS_RETRY_MODE says otherwise; AWS_MAX_ATTEMPTS applies.
    retries: Any = {} if os.environ.get("AWS_RETRY_MODE") else {"mode": "standard"}
    config = Config(connect_timeout=5, read_timeout=60, retries=retries)
    return session.client("s3", region_name=region, config=config)


class _BodyReader(io.RawIOBase):
    """Raw stream over a botocore StreamingBody that reads in bounded pieces and maps read errors."""

    def __init__(self, body: Any, loc: Location) -> None:
        self._body, self._loc = body, loc

    def readable(self) -> bool:
        return True

    def readall(self) -> bytes:  # the inherited one would read in 8 KiB pieces
        with _errors(self._loc):
            data: bytes = self._body.read()
        return data

    def readinto(self, buffer: Any) -> int:
        with _errors(self._loc):
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class S3Store:
    """ObjectStore over S3. Stateless apart from the shared cached client."""

    @contextmanager
    def open_read(self, loc: Location) -> Iterator[BinaryIO]:
        with _errors(loc):
            body = get_client().get_object(Bucket=loc.bucket, Key=loc.key)["Body"]
        with io.BufferedReader(_BodyReader(body, loc), _READ_BUFFER) as f:
            yield f

    @contextmanager
    def atomic_write(self, loc: Location) -> Iterator[BinaryIO]:
        # S3 makes an object visible only when its upload completes, so spooling + one upload is atomic.
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            yield spool  # type: ignore[misc]
            spool.seek(0)
            with _errors(loc):
                get_client().upload_fileobj(spool, loc.bucket, loc.key)

    def read_bytes(self, loc: Location) -> bytes:
        with self.open_read(loc) as f:
            return f.read()

    def write_bytes(self, loc: Location, data: bytes) -> None:
        with _errors(loc):
            get_client().put_object(Bucket=loc.bucket, Key=loc.key, Body=data)

    def upload_file(self, local_path: Path, loc: Location) -> None:
        # upload_fileobj, not upload_file: the latter hides the ClientError inside a string.
        with LocalStore().open_read(Location("file", "", str(local_path), plain=True)) as f, _errors(loc):
            get_client().upload_fileobj(f, loc.bucket, loc.key)

    def download_file(self, loc: Location, local_path: Path) -> None:
        # Parallel ranged GETs into a temp file that is renamed into place only when complete.
        with LocalStore().atomic_write(Location("file", "", str(local_path), plain=True)) as f, _errors(loc):
            get_client().download_fileobj(loc.bucket, loc.key, f)

    def exists(self, loc: Location) -> bool:
        with _errors(loc):
            try:
                get_client().head_object(Bucket=loc.bucket, Key=loc.key)
            except ClientError as exc:
                # A missing bucket is a configuration error, not "no such object": let _errors report it.
                if _code(exc) in _NOT_FOUND and not _bucket_missing(loc):
                    return False
                raise
        return True

    def list_objects(self, prefix: Location) -> Iterator[ObjectInfo]:
        with _errors(prefix):
            pages = get_client().get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=prefix.key)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(
                        uri=str(prefix.with_key(obj["Key"])),
                        size=obj["Size"],
                        etag=obj.get("ETag", "").strip('"'),
                        last_modified=obj["LastModified"].astimezone(timezone.utc),
                    )

    def delete(self, loc: Location) -> None:
        with _errors(loc):  # S3 DeleteObject succeeds for a missing key, so this is idempotent
            get_client().delete_object(Bucket=loc.bucket, Key=loc.key)


def _endpoint() -> str:
    try:
        return str(get_client().meta.endpoint_url)
    except Exception:  # noqa: BLE001 - only used to word an error message
        return "the configured S3 endpoint"


def _bucket_missing(loc: Location) -> bool:
    """HEAD answers a bare 404 for both a missing key and a missing bucket; ask about the bucket."""
    try:
        get_client().head_bucket(Bucket=loc.bucket)
    except ClientError as exc:
        return _code(exc) in ("404", "NoSuchBucket")
    except BotoCoreError:
        return False
    return False


@contextmanager
def _errors(loc: Location) -> Iterator[None]:
    """Translate botocore/boto3/s3transfer errors into tuneforge errors that say what to do next."""
    try:
        yield
    except TuneforgeError:
        raise
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise AccessDenied(
            f"no usable AWS credentials for {loc} ({exc}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE naming a profile in ~/.aws/credentials"
        ) from exc
    except (BotoConnectionError, HTTPClientError) as exc:
        raise Unavailable(
            f"cannot reach S3 endpoint {_endpoint()} for {loc} ({type(exc).__name__}): check that it is up, "
            "and that AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL point to it"
        ) from exc
    except ParamValidationError as exc:
        raise InvalidInput(f"invalid S3 request for {loc}: {exc}") from exc
    except ClientError as exc:
        raise _client_error(exc, loc) from exc
    except (
        BotoCoreError,
        Boto3Error,
        transfer_errors.RetriesExceededError,
        transfer_errors.S3UploadFailedError,
        transfer_errors.S3DownloadFailedError,
    ) as exc:
        raise Unavailable(f"S3 request for {loc} failed at {_endpoint()}: {exc}: retry later") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client_error(exc: ClientError, loc: Location) -> TuneforgeError:
    error = exc.response.get("Error", {})
    code = _code(exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code == "NoSuchBucket" or (code in _NOT_FOUND and code != "NoSuchKey" and _bucket_missing(loc)):
        return NotFound(
            f"S3 bucket '{loc.bucket}' does not exist at {_endpoint()}: "
            f"create it (aws s3 mb s3://{loc.bucket}) or fix the URI"
        )
    if code in _NOT_FOUND:
        return NotFound(f"S3 object '{loc}' does not exist: check the key or write the object first")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
        return AccessDenied(
            f"S3 at {_endpoint()} rejected the credentials ({code}): check AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN or the AWS_PROFILE in use"
        )
    if code in ("AccessDenied", "403", "AllAccessDisabled") or status == 403:
        return AccessDenied(f"access to '{loc}' denied ({code}): grant these credentials access or use another location")
    if code in ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded") or status == 429:
        return Throttled(f"S3 is throttling requests for '{loc}' ({code}): retry later")
    if code == "InvalidBucketName":
        return InvalidInput(f"'{loc.bucket}' is not a valid S3 bucket name: fix the URI")
    if status >= 500:
        return Unavailable(f"S3 at {_endpoint()} failed for '{loc}' ({code} {status}): retry later")
    return TuneforgeError(f"S3 request for '{loc}' failed: {code}: {error.get('Message', exc)}")
