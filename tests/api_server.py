"""A real `tuneforge serve` subprocess for API tests, and a check of raw replies against botocore's output shapes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import botocore.config
import botocore.session
from botocore.validate import ParamValidator

if TYPE_CHECKING:  # only annotations: this harness talks to tuneforge through its CLI and its API
    from tuneforge.jobs.service import JobService


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tuneforge(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI against `home`; raises with its output when it fails."""
    done = subprocess.run([sys.executable, "-m", "tuneforge", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TUNEFORGE_HOME": str(home), **(env or {})})
    if done.returncode != 0:
        raise AssertionError(f"tuneforge {' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}")
    return done


def create_key(home: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """A real access key from `tuneforge keys create --json`: (access key id, secret)."""
    issued = json.loads(tuneforge(home, "keys", "create", "--json", *flags, env=env).stdout)
    return issued["accessKeyId"], issued["secretAccessKey"]


class Server:
    """`tuneforge serve` on a free port, with a full-access key (`self.key`) made by the CLI beforehand."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, *, no_auth: bool = False, cwd: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = home
        self.env = env
        self.key = create_key(home, "--name", "tests", env=env) if not no_auth else ("AKIDEXAMPLE", "not-checked")
        self.log = open(home.parent / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tuneforge", "serve", "--port", str(self.port), *(["--no-auth"] if no_auth else [])],
            env={**os.environ, "TUNEFORGE_HOME": str(home), **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT,
            cwd=cwd,  # `python -m` puts the working directory first on sys.path: another tree's tuneforge runs from there
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tuneforge serve exited: {(home.parent / 'server.log').read_text()}")
                time.sleep(0.2)
        raise RuntimeError("tuneforge serve did not start in 60 s")

    def client(self, service: str, key: tuple[str, str] | None = None, **config):
        """A boto3 client of `service` signing with `key` (default: the server's full-access key)."""
        return client(service, self.url, key or self.key, **config)

    def stop(self) -> None:
        if self.log.closed:  # stopped already (a test may stop it early to read what it left behind)
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def stop_unfinished(jobs: JobService) -> None:
    """Job processes outlive their caller by design: a test must not leave them training in the background."""
    for row in jobs.list(status="InProgress").jobs:
        jobs.stop(row.job_id)


class ShapeChecker:
    """Records every raw reply of a client and checks it against the operation's output shape."""

    def __init__(self, client) -> None:
        self.model = client.meta.service_model
        self.problems: list[str] = []
        self.checked: set[str] = set()
        client.meta.events.register("after-call", self._after_call)

    def _after_call(self, http_response, parsed, model, **kwargs) -> None:
        if http_response.status_code >= 300 or model.output_shape is None or model.has_event_stream_output:
            return
        if model.output_shape.serialization.get("payload"):
            return  # a raw body (InvokeModel): checked by the test itself
        raw = json.loads(http_response.content or b"{}")
        self.checked.add(model.name)
        self._check(model.output_shape, raw, model.name)
        report = ParamValidator().validate(parsed_without_metadata(parsed), model.output_shape)
        if report.has_errors():
            self.problems.append(f"{model.name}: {report.generate_report()}")

    def _check(self, shape, value, where: str) -> None:
        if shape.metadata.get("document"):
            return  # any JSON (Rerank's jsonDocument): it has no members to check
        if shape.type_name == "structure" and isinstance(value, dict):
            unknown = set(value) - set(shape.members)
            if unknown:
                self.problems.append(f"{where}: members not in botocore's shape: {sorted(unknown)}")
            for name, member in shape.members.items():
                if name in value:
                    self._check(member, value[name], f"{where}.{name}")
        elif shape.type_name == "list" and isinstance(value, list):
            for i, item in enumerate(value):
                self._check(shape.member, item, f"{where}[{i}]")


def parsed_without_metadata(parsed: dict) -> dict:
    return {k: v for k, v in parsed.items() if k != "ResponseMetadata"}


def client(service: str, url: str, key: tuple[str, str], **config):
    session = botocore.session.get_session()
    return session.create_client(
        service, region_name="us-east-1", endpoint_url=url, aws_access_key_id=key[0], aws_secret_access_key=key[1],
        config=botocore.config.Config(**config) if config else None,
    )
