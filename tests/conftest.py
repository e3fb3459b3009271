"""Shared fixtures. Servers the tests need are started by the tests: PostgreSQL (pgserver) and S3 (moto)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tiny_model import build_tiny_llama

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_s3", "tests.fixtures_redis"]

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


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TUNEFORGE_HOME for code and subprocesses that read the environment."""
    path = tmp_path / "home"
    monkeypatch.setenv("TUNEFORGE_HOME", str(path))
    monkeypatch.delenv("TUNEFORGE_DATABASE_URL", raising=False)
    return path
