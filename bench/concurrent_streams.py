"""How many concurrent streaming clients does one server hold? This tree against an earlier commit, same run.

    python bench/concurrent_streams.py                                   # 8..256 streams (a few minutes)
    python bench/concurrent_streams.py --streams 64,256 --batch 16
    python bench/concurrent_streams.py --streams 4,48 --tokens 24        # smoke run (CI)

Each side is a real `tuneforge serve --no-auth` on a fresh TUNEFORGE_HOME serving the tests' tiny random Llama
(tests/tiny_model.py) on demand, with TUNEFORGE_MAX_BATCH_SIZE=--batch and a queue deep enough for every stream.
The baseline side runs the tree of --baseline (default: the last commit before generation went async, whose
server held a thread of Starlette's pool, 40 by default, for every stream waiting on the model), extracted with
`git archive`; the other side runs this checkout.

For every count N in --streams, N clients open InvokeModelWithResponseStream at once (--tokens tokens each,
sampled, so the batch decodes --batch of them and queues the rest) and read their streams to the end, while a
probe times ListFoundationModels (a plain control-plane call) every 0.2 s. A count is *held* when every stream
ends with its invocation metrics and the slowest probe answers within --probe-limit seconds. Prints one table
per side (streams completed, time to first event, wall time, slowest probe), the largest count each side
holds, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _preflight import require  # bench/ is sys.path[0] when a benchmark runs

require("tuneforge", "torch", "transformers", "httpx", "botocore")

import httpx  # noqa: E402
from botocore.eventstream import EventStreamBuffer  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.api_server import Server  # noqa: E402  (the tests' real-server harness)
from tests.tiny_model import build_tiny_llama  # noqa: E402  (the tests' tiny model)

BASELINE = "8dc5e76"  # thread-per-stream server, with the same capacity settings as this tree
PROMPT = "Count to one thousand, one number per line:"


def extract(ref: str, target: Path) -> Path:
    """The `tuneforge` package as of `ref`, unpacked under `target` (a directory to put first on PYTHONPATH)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref, "tuneforge"], capture_output=True)
    if archive.returncode != 0:
        sys.exit(f"bench/concurrent_streams.py: cannot read commit {ref!r} from {REPO}: {archive.stderr.decode().strip()}\n"
                 "Run it in a full clone (`git fetch --unshallow`), or pass another --baseline.")
    target.mkdir(parents=True)
    tar = target / "tree.tar"
    tar.write_bytes(archive.stdout)
    with tarfile.open(tar) as t:
        t.extractall(target, filter="data")
    tar.unlink()
    return target


def start(root: Path, tree: Path, model: Path, batch: int) -> Server:
    """`tuneforge serve --no-auth` of `tree` with the tiny model registered (by that tree's own CLI) as "tiny"."""
    home = root / "home"
    home.mkdir(parents=True)
    env = {"PYTHONPATH": str(tree), "TUNEFORGE_HOME": str(home), "TUNEFORGE_DATABASE_URL": "", "HF_HUB_OFFLINE": "1",
           "TUNEFORGE_MAX_BATCH_SIZE": str(batch), "TUNEFORGE_MAX_QUEUE": "100000"}
    which = subprocess.run([sys.executable, "-c", "import tuneforge; print(tuneforge.__file__)"], capture_output=True,
                           text=True, env={**os.environ, **env}, cwd=tree).stdout.strip()
    if not Path(which).is_relative_to(tree):
        sys.exit(f"the server would run {which}, not the tree under test in {tree}")
    # `python -m` runs the tuneforge of its working directory (first on sys.path), whatever is installed
    added = subprocess.run([sys.executable, "-m", "tuneforge", "models", "add", "tiny", str(model)], capture_output=True,
                           text=True, env={**os.environ, **env}, cwd=tree)
    if added.returncode != 0:
        sys.exit(f"registering the tiny model failed:\n{added.stdout}{added.stderr}")
    return Server(home, env=env, no_auth=True, cwd=tree)


def completed(frames: bytes) -> bool:
    """The stream ended with its invocation metrics and carried no exception event."""
    buffer = EventStreamBuffer()
    buffer.add_data(frames)
    last = None
    for message in buffer:
        if message.headers.get(":message-type") != "event":
            return False
        last = json.loads(base64.b64decode(json.loads(message.payload)["bytes"]))
    return last is not None and "amazon-bedrock-invocationMetrics" in last


async def one_stream(client: httpx.AsyncClient, tokens: int, started: float) -> tuple[bool, float, float]:
    """(completed, seconds to the first event, longest silence after it)."""
    body = {"prompt": PROMPT, "max_gen_len": tokens, "temperature": 1.0, "top_p": 1.0}
    first = last = None
    stall = 0.0
    data = b""
    async with client.stream("POST", "/model/tiny/invoke-with-response-stream", json=body) as response:
        async for piece in response.aiter_bytes():
            now = time.perf_counter()
            if first is None:
                first = now - started
            else:
                stall = max(stall, now - last)
            last = now
            data += piece
        ok = response.status_code == 200 and completed(data)
    return ok, first if first is not None else float("nan"), stall


async def probe(client: httpx.AsyncClient, done: asyncio.Event) -> list[float]:
    latencies = []
    while not done.is_set():
        began = time.perf_counter()
        (await client.get("/foundation-models")).raise_for_status()
        latencies.append(time.perf_counter() - began)
        try:
            await asyncio.wait_for(done.wait(), 0.2)
        except TimeoutError:
            pass
    return latencies


async def measure(url: str, count: int, tokens: int) -> dict:
    limits = httpx.Limits(max_connections=count + 4, max_keepalive_connections=count + 4)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(600.0), limits=limits) as client:
        await one_stream(client, 4, time.perf_counter())  # the model is loaded before the clock starts
        done = asyncio.Event()
        probing = asyncio.create_task(probe(client, done))
        started = time.perf_counter()
        results = await asyncio.gather(*(one_stream(client, tokens, started) for _ in range(count)), return_exceptions=True)
        wall = time.perf_counter() - started
        done.set()
        probes = await probing
    ok = [r for r in results if not isinstance(r, BaseException) and r[0]]
    firsts = sorted(r[1] for r in ok)
    return {"count": count, "ok": len(ok), "wall": wall, "probe_max": max(probes, default=float("nan")),
            "first_p50": statistics.median(firsts) if firsts else float("nan"),
            "first_max": firsts[-1] if firsts else float("nan")}


def run_side(label: str, root: Path, tree: Path, model: Path, args: argparse.Namespace) -> list[dict]:
    server = start(root, tree, model, args.batch)
    try:
        rows = []
        for count in args.streams:
            row = asyncio.run(measure(server.url, count, args.tokens))
            row["held"] = row["ok"] == count and row["probe_max"] <= args.probe_limit
            rows.append(row)
            print(f"  {label:9s} {count:6d} streams: {row['ok']:6d} completed, first event p50 {row['first_p50']:6.2f} s "
                  f"max {row['first_max']:6.2f} s, wall {row['wall']:6.2f} s, slowest probe {row['probe_max']:6.2f} s"
                  f"{'' if row['held'] else '   NOT HELD'}", flush=True)
        return rows
    finally:
        server.stop()


def held(rows: list[dict]) -> int:
    """The largest count held, counting up until the first that is not."""
    best = 0
    for row in rows:
        if not row["held"]:
            break
        best = row["count"]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=lambda s: sorted(int(x) for x in s.split(",")), default=[8, 32, 64, 128, 256],
                        help="comma-separated counts of concurrent streams")
    parser.add_argument("--tokens", type=int, default=160, help="tokens generated per stream")
    parser.add_argument("--batch", type=int, default=8, help="TUNEFORGE_MAX_BATCH_SIZE of both servers")
    parser.add_argument("--probe-limit", type=float, default=1.0, help="seconds the slowest control-plane probe may take")
    parser.add_argument("--baseline", default=BASELINE, help="the commit whose server is the baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_llama(root / "tiny")
        print(f"{args.tokens} tokens per stream, batch {args.batch}; baseline = commit {args.baseline}, current = {REPO}", flush=True)
        before = run_side("baseline", root / "before", extract(args.baseline, root / "baseline-tree"), model, args)
        after = run_side("current", root / "after", REPO, model, args)
    b, a = held(before), held(after)
    print(f"streams held (all complete, slowest probe <= {args.probe_limit:g} s): baseline {b}, current {a}")
    top = "at least " if a == args.streams[-1] else ""  # it held the largest count tried: the real figure is higher
    ratio = f"{top}{a / b:.2f}x" if b else "n/a (the baseline held none)"
    print(f"ratio current/baseline: {ratio}; slowest probe at {args.streams[-1]} streams: "
          f"baseline {before[-1]['probe_max']:.2f} s, current {after[-1]['probe_max']:.2f} s")


if __name__ == "__main__":
    main()
