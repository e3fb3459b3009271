"""Pytest fixtures for a real S3 API: moto's standalone server in a subprocess, spoken to over HTTP.

    moto_endpoint  (session)  "http://127.0.0.1:PORT" of a running moto server; killed at session end
    s3_env         (function) sets AWS_* env vars to that server, clears the client cache, creates a fresh
                              bucket and yields "s3://<bucket>"
    closed_port_endpoint (function) "http://127.0.0.1:PORT" where nothing listens
No mocking: the code under test builds its own boto3 client from the environment, as in production.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from tuneforge.storage import clear_client_cache, get_client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    pytest.fail(f"moto server exited with {proc.returncode}: {err[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"moto server did not answer at {endpoint} within 30 s")
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _point_aws_env_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Configure boto3 only through the environment, and shut out the developer's own AWS setup."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _point_aws_env_at(monkeypatch, moto_endpoint)
    clear_client_cache()
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    get_client().create_bucket(Bucket=bucket)
    yield f"s3://{bucket}"
    clear_client_cache()


@pytest.fixture
def closed_port_endpoint(monkeypatch: pytest.MonkeyPatch) -> str:
    """An endpoint nothing listens on, with one attempt per request so the failure is fast."""
    endpoint = f"http://127.0.0.1:{_free_port()}"
    _point_aws_env_at(monkeypatch, endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    clear_client_cache()
    return endpoint
