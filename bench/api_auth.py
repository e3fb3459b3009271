"""What does authentication cost per request? A signed server (baseline: the same server with --no-auth), same run.

    python bench/api_auth.py [--requests 300] [--keys 50]
    python bench/api_auth.py --requests 3 --keys 2        # smoke run (CI)

Each case runs `tuneforge serve` as a subprocess on a fresh TUNEFORGE_HOME and times sequential boto3
ListFoundationModels calls (SigV4 verification: one key lookup and one AES-GCM decryption per request), and
OpenAI GET /v1/models with the secret alone as the bearer (every key's secret is compared, so it grows with
--keys) and as ACCESS_KEY_ID:SECRET (one lookup). Prints median latencies and ratios against --no-auth.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _preflight import require  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "botocore", "httpx")

import botocore  # noqa: E402
import httpx  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.api_server import Server, create_key  # noqa: E402  (the tests' real-server harness)


def median_ms(call, n: int) -> float:
    call()  # warm-up: connection, first database access
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(home: Path, no_auth: bool, keys: int, n: int) -> dict[str, float]:
    home.mkdir(parents=True)
    for _ in range(0 if no_auth else keys - 1):
        create_key(home)
    server = Server(home, no_auth=no_auth)
    try:
        bedrock = server.client("bedrock", **({"signature_version": botocore.UNSIGNED} if no_auth else {}))
        web = httpx.Client(base_url=server.url, timeout=30)
        key_id, secret = server.key
        return {
            "boto3 ListFoundationModels": median_ms(bedrock.list_foundation_models, n),
            "openai /v1/models, bearer SECRET": median_ms(lambda: web.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}).raise_for_status(), n),
            "openai /v1/models, bearer ID:SECRET": median_ms(lambda: web.get("/v1/models", headers={"Authorization": f"Bearer {key_id}:{secret}"}).raise_for_status(), n),
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--keys", type=int, default=50, help="keys in the store (the bearer-secret lookup scans them)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        baseline = measure(Path(tmp) / "open" / "home", True, args.keys, args.requests)
        signed = measure(Path(tmp) / "auth" / "home", False, args.keys, args.requests)
    print(f"{args.requests} sequential requests per case, {args.keys} keys in the store; median ms")
    for case, base in baseline.items():
        print(f"  {case:38s} no-auth {base:6.2f}   auth {signed[case]:6.2f}   ratio {signed[case] / base:5.2f}x")


if __name__ == "__main__":
    main()
