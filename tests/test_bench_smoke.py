"""Every benchmark in bench/ runs, on tiny settings, as a user runs it (`python bench/<name>.py` in a subprocess),
exits 0 and prints its figures, so none can rot; and each checks its packages before any work.

Benchmarks that read the shared data (../shared/data beside the repository, or $TUNEFORGE_SHARED_DATA) are
skipped when it is absent. The ones that load the default model are marked slow. The figures of a smoke run mean
nothing (other load, one step); only that the benchmark ran through and printed them is checked.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SHARED = Path(os.environ.get("TUNEFORGE_SHARED_DATA", REPO.parent / "shared" / "data"))
TIMEOUT = 1800  # seconds: a hung benchmark fails the run instead of stalling CI (a smoke run takes far less)

# (script, shared data it reads, what its output must show); the tiny flags are the "smoke run (CI)" line of the
# script's docstring, so the command a reader sees there is the one that is tested
SMOKE = [
    pytest.param("api_auth.py", [], ["no-auth", "ratio"], id="api_auth"),
    pytest.param("batch_inference.py", [], ["InvokeModel one by one", "throughput ratio (batch job inference"], id="batch_inference",
                 marks=pytest.mark.slow),
    pytest.param("concurrent_streams.py", [], ["streams held", "ratio current/baseline"], id="concurrent_streams"),
    pytest.param("cpu_dtype.py", [], ["decode tokens/s", "ratio", "perplexity"], id="cpu_dtype", marks=pytest.mark.slow),
    pytest.param("dpo_throughput.py", ["dialogsum"], ["ratio ours/TRL", "TRL DPOTrainer", "reward acc"], id="dpo_throughput",
                 marks=pytest.mark.slow),
    pytest.param("fail_fast.py", [], ["baseline", "ratio"], id="fail_fast"),
    pytest.param("job_stop.py", [], ["baseline", "ratio"], id="job_stop", marks=pytest.mark.slow),
    pytest.param("quality.py", ["dialogsum", "rlhf-book"], ["ROUGE-L", "Perplexity", "total wall time"], id="quality",
                 marks=pytest.mark.slow),
    pytest.param("retrieval.py", ["xrefrag", "uscode-securities"], ["recall x BM25", "HYBRID"], id="retrieval"),
    pytest.param("serve_throughput.py", [], ["throughput ratio"], id="serve_throughput", marks=pytest.mark.slow),
    # without TUNEFORGE_VLLM_PYTHON (CI) only the built-in side runs, and its ratio line says what is missing
    pytest.param("serving_engines.py", [], ["builtin", "ratio vllm/builtin"], id="serving_engines"),
    # its 8-column table wraps headers at 80 columns; the baseline row's ratio to itself is always there
    pytest.param("training_length.py", ["dialogsum"], ["grows", "1.00x"], id="training_length", marks=pytest.mark.slow),
    pytest.param("train_throughput.py", ["dialogsum"], ["ratio ours/TRL", "MFU TRL SFTTrainer"], id="train_throughput",
                 marks=pytest.mark.slow),
    pytest.param("validate_throughput.py", [], ["baseline", "ratio"], id="validate_throughput"),
    pytest.param("vector_search.py", [], ["cache speed-up"], id="vector_search"),
]


def benchmarks() -> list[Path]:
    return sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))  # _preflight.py is not one


def smoke_flags(script: str) -> list[str]:
    """The flags of the `python bench/<script> ...  # smoke run (CI)` line in the script's docstring."""
    doc = ast.get_docstring(ast.parse((BENCH / script).read_text())) or ""
    line = next((line for line in doc.replace("\\\n", " ").splitlines() if "# smoke run" in line), None)
    assert line is not None, f"bench/{script}'s docstring has no '# smoke run (CI)' command"
    command = line.split("#")[0].split()
    assert command[:2] == ["python", f"bench/{script}"], line
    return command[2:]


def run_bench(script: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TUNEFORGE_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}  # this checkout's tuneforge
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=TIMEOUT)


@pytest.fixture(scope="module")
def bench_home(tmp_path_factory) -> Path:
    """One data directory for every smoke run: the default model is materialized once, not per benchmark."""
    return tmp_path_factory.mktemp("bench-home")


def test_every_benchmark_is_listed():
    assert [p.name for p in benchmarks()] == sorted({param.values[0] for param in SMOKE})


@pytest.mark.parametrize("path", benchmarks(), ids=lambda p: p.stem)
def test_packages_are_checked_before_anything_is_imported(path):
    """`require(...)` is the first call of the script, before any third-party or tuneforge import."""
    tree = ast.parse(path.read_text())
    body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    first_call = next(i for i, node in enumerate(body) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call))
    assert ast.unparse(body[first_call]).startswith("require("), path.name
    for node in body[:first_call]:
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) else []
        for module in modules:
            top = module.split(".")[0]
            assert top == "_preflight" or top in sys.stdlib_module_names, f"{path.name} imports {module} before require()"


def test_a_missing_package_fails_at_once_naming_it():
    """trl is blocked the way Python marks a module unimportable (sys.modules[name] = None); the benchmark stops in
    its preflight, before torch is imported, and says what to install and how."""
    probe = (
        "import runpy, sys\n"
        "sys.modules['trl'] = None\n"
        f"sys.argv = [{str(BENCH / 'train_throughput.py')!r}]\n"
        f"sys.path.insert(0, {str(BENCH)!r})\n"
        "try:\n"
        f"    runpy.run_path({str(BENCH / 'train_throughput.py')!r}, run_name='__main__')\n"
        "finally:\n"
        "    print('torch imported:', 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 1, done.stderr
    assert "bench/train_throughput.py needs trl" in done.stderr and "make install" in done.stderr and "[bench]" in done.stderr
    assert "Traceback" not in done.stderr and "torch imported: False" in done.stdout


@pytest.mark.parametrize(("script", "shared", "expected"), SMOKE)
def test_smoke_run(script, shared, expected, bench_home):
    absent = [name for name in shared if not (SHARED / name).exists()]
    if absent:
        pytest.skip(f"needs {', '.join(absent)} in the shared data at {SHARED} (../shared/data or $TUNEFORGE_SHARED_DATA)")
    done = run_bench(script, *smoke_flags(script), home=bench_home)
    assert done.returncode == 0, f"{script} exited {done.returncode}\n{done.stdout}\n{done.stderr[-4000:]}"
    for needle in expected:
        assert needle in done.stdout, f"{script} did not print {needle!r}:\n{done.stdout}"


def test_vector_search_on_pgvector_and_redis(postgres_url, redis_url, bench_home):
    done = run_bench("vector_search.py", *smoke_flags("vector_search.py"), "--postgres-url", postgres_url,
                     "--redis-url", redis_url, home=bench_home)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    for store in ("PgVectorStore", "RedisStore"):
        assert store in done.stdout
    assert done.stdout.count("recall@10 vs exact") == 2
