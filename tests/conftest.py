"""Shared fixtures. Servers the tests need are started by the tests: PostgreSQL (pgserver), S3 (moto), Redis, and
`tuneforge serve` itself:

    server        (module)   one real `tuneforge serve` per module (tests/api_server.py), with the tiny model
                             registered as "tiny"; a module sets it up with `pytestmark = pytest.mark.server(...)`
    start_server  (function) starts servers of a test's own (--no-auth, or an environment such as s3_env set first)
Both take the same settings, `server_setup`'s keyword arguments. Module scope, not session: modules leave state
behind (jobs, deployments, keys) and some check the state is exactly theirs. A test that uses either is marked
slow (pytest_collection_modifyitems), so `make test-fast` leaves it out.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.api_server import Server, stop_unfinished
from tests.tiny_model import build_tiny_llama
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.jobs.service import JobService
from tuneforge.settings import load_settings

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_s3", "tests.fixtures_redis", "tests.fixtures_ray"]

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init Llama checkpoint (saved with save_pretrained) and its tokenizer."""
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init sentence-transformers model with all-MiniLM-L6-v2's tokenizer (tests/tiny_embedder.py)."""
    from tests.tiny_embedder import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture(scope="session")
def tiny_reranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init cross-encoder with all-MiniLM-L6-v2's tokenizer (tests/tiny_reranker.py)."""
    from tests.tiny_reranker import build_tiny_reranker

    return build_tiny_reranker(tmp_path_factory.mktemp("tiny-reranker"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TUNEFORGE_HOME for code and subprocesses that read the environment."""
    path = tmp_path / "home"
    monkeypatch.setenv("TUNEFORGE_HOME", str(path))
    monkeypatch.delenv("TUNEFORGE_DATABASE_URL", raising=False)
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"server", "start_server"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)  # a server takes seconds to start, its workers more to load a model


# ---- tuneforge serve ------------------------------------------------------------------------------------------------
@contextmanager
def server_setup(request: pytest.FixtureRequest, root: Path, *, aliases: dict[str, str] | None = None, embedder: bool = False,
                 reranker: bool = False, unloadable: tuple[str, ...] = (), env: dict[str, str] | None = None, no_auth: bool = False) -> Iterator[Server]:
    """`tuneforge serve` on `root/home` (SQLite), the tiny model registered as "tiny"; stopped, with any job it left
    running, on exit.

    aliases     Bedrock model ids mapped onto catalog models, e.g. {"meta.llama2-13b-chat-v1": "tiny"}
    embedder    also register the tiny sentence-transformers model as "tiny.embedder" (knowledge bases)
    reranker    also register the tiny cross-encoder as "tiny.reranker" (Rerank, rerankingConfiguration)
    unloadable  model ids registered as copies of "tiny" whose weights are then deleted: they cannot load
    env         extra environment of the server process (TUNEFORGE_MAX_QUEUE, ...)
    no_auth     `serve --no-auth`; `server.key` is then a placeholder
    """
    tiny = request.getfixturevalue("tiny_model_dir")
    home = root / "home"
    settings = load_settings(home=home, database_url="")
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    catalog.add("tiny", str(tiny))
    if embedder:
        catalog.add("tiny.embedder", str(request.getfixturevalue("tiny_embedder_dir")), embedding=True)
    if reranker:
        catalog.add("tiny.reranker", str(request.getfixturevalue("tiny_reranker_dir")), reranker=True)
    for model_id in unloadable:
        copy = root / f"{model_id}-model"
        shutil.copytree(tiny, copy)
        catalog.add(model_id, str(copy))
        for weights in copy.glob("*.safetensors"):
            weights.unlink()  # after registering: it registers fine, then cannot load
    for alias, target in (aliases or {}).items():
        catalog.alias(alias, target)
    # the server reads the same SQLite file whatever TUNEFORGE_DATABASE_URL the developer's shell has
    server = Server(home, env={"TUNEFORGE_DATABASE_URL": "", **(env or {})}, no_auth=no_auth)
    try:
        yield server
    finally:
        server.stop()
        stop_unfinished(JobService(settings, sessions, catalog))


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The module's `tuneforge serve`, set up by its `pytest.mark.server(...)` (see server_setup)."""
    marker = request.node.get_closest_marker("server")
    root = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    with server_setup(request, root, **(marker.kwargs if marker else {})) as srv:
        yield srv


@pytest.fixture
def start_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """`start_server(**setup)` starts a server of the test's own on `tmp_path/home`; all are stopped after the test."""
    with ExitStack() as servers:
        yield lambda **setup: servers.enter_context(server_setup(request, tmp_path, **setup))
