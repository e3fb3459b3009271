"""A real Ray cluster for the tests: `ray start --head --block` on free ports, in its own process group, torn down by
killing that group (never `ray stop`, which would stop every Ray cluster on the machine).

    ray_cluster  (module)  the dashboard's Jobs API, "http://127.0.0.1:PORT", of a one-node cluster with 2 CPUs
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

PORTS = ("port", "dashboard-port", "ray-client-server-port", "node-manager-port", "object-manager-port", "metrics-export-port",
         "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        pytest.skip("ray is not installed in this environment (`make install` installs it)")
    ports = {name: _free_port() for name in PORTS}
    low = random.randrange(20_000, 60_000, 1_000)  # worker ports: a window of their own, away from another cluster's
    temp = Path(tempfile.mkdtemp(prefix="tfray-", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    args = [str(ray), "start", "--head", "--block", "--disable-usage-stats", "--num-cpus", "2", "--include-dashboard", "true",
            "--dashboard-host", "127.0.0.1", "--temp-dir", str(temp), "--min-worker-port", str(low),
            "--max-worker-port", str(low + 999), *(f"--{name}={port}" for name, port in ports.items())]
    log = open(temp / "ray-start.log", "w")
    proc = subprocess.Popen(args, start_new_session=True, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    url = f"http://127.0.0.1:{ports['dashboard-port']}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/jobs/", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ray start did not come up: {(temp / 'ray-start.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(proc.pid):
                time.sleep(0.2)
        proc.wait(timeout=10)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
