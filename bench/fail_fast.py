"""How fast does an unreachable backend fail? PostgreSQL and S3 against the floor, a refused TCP connect, same run.

    python bench/fail_fast.py [--repeats 5]
    python bench/fail_fast.py --repeats 1                  # smoke run (CI)

The tests check that an unreachable database or S3 endpoint is `Unavailable` with a useful message
(tests/test_db.py, tests/test_storage.py); how long that takes is measured here. Each case targets a port on
127.0.0.1 where nothing listens (connection refused at once), and is the median of --repeats calls:
- open_database(postgresql://...) -> Unavailable (psycopg2; connect_timeout only matters for hosts that drop
  packets, not for a refused port)
- storage.read_bytes("s3://...") -> Unavailable, S3 pointed there by AWS_ENDPOINT_URL_S3: once with
  AWS_MAX_ATTEMPTS=1 (as the tests' closed_port_endpoint fixture), once with tuneforge's default retries
  (standard mode, 3 attempts with jittered backoff: what a user sees)
Baseline: socket.create_connection to the same port, i.e. the refusal itself. Printed: median ms and the ratio.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
from collections.abc import Callable

from _preflight import require  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "psycopg2", "boto3")

from tuneforge import storage
from tuneforge.db import open_database
from tuneforge.errors import Unavailable


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free once the socket closes: nothing listens there


def median_ms(call: Callable[[], object], repeats: int, expected: type[BaseException]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            call()
        except expected:
            pass
        else:
            raise AssertionError(f"{call} did not raise {expected.__name__}")
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def point_s3_at(endpoint: str, max_attempts: int | None) -> None:
    """Only the environment configures boto3 (as in tests/fixtures_s3.py), shutting out the user's AWS setup."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    os.environ.update({"AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                       "AWS_EC2_METADATA_DISABLED": "true"})
    if max_attempts is not None:
        os.environ["AWS_MAX_ATTEMPTS"] = str(max_attempts)
    storage.clear_client_cache()
    try:
        storage.read_bytes("s3://bench/warm-up")  # creating the client (~100 ms) is not what is measured
    except Unavailable:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    port = closed_port()
    n = iter(range(10**6))  # a new URL each call: open_database keeps what it opened per URL

    cases = {"refused TCP connect (baseline)": median_ms(lambda: socket.create_connection(("127.0.0.1", port), timeout=5),
                                                         args.repeats, ConnectionRefusedError)}
    cases["open_database(postgresql://)"] = median_ms(
        lambda: open_database(f"postgresql+psycopg2://me:secret@127.0.0.1:{port}/db{next(n)}"), args.repeats, Unavailable)
    point_s3_at(f"http://127.0.0.1:{port}", max_attempts=1)
    cases["s3 read_bytes, AWS_MAX_ATTEMPTS=1"] = median_ms(lambda: storage.read_bytes("s3://bench/key"), args.repeats, Unavailable)
    point_s3_at(f"http://127.0.0.1:{port}", max_attempts=None)
    cases["s3 read_bytes, default retries"] = median_ms(lambda: storage.read_bytes("s3://bench/key"), args.repeats, Unavailable)

    baseline = cases["refused TCP connect (baseline)"]
    print(f"port {port} on 127.0.0.1 (closed); median of {args.repeats}")
    for case, ms in cases.items():
        print(f"  {case:36s} {ms:9.2f} ms   ratio {ms / baseline:9.1f}x")


if __name__ == "__main__":
    main()
