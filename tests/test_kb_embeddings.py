"""Embedding workers: the `embed` op of tuneforge.inference.worker on a tiny sentence-transformers model."""

import numpy as np
import pytest

from tuneforge.errors import InvalidInput
from tuneforge.inference.spec import WorkerSpec
from tuneforge.serving.client import WorkerProcess


@pytest.mark.slow  # an embedding worker process
def test_embed_returns_normalized_float32_rows_in_order(tiny_embedder_dir):
    with WorkerProcess(WorkerSpec("tiny-embedder", str(tiny_embedder_dir), task="embed")) as worker:
        assert worker.info.dimension == 32 and worker.info.max_tokens == 128
        texts = ["the guest checks in", "exchange rules", "the guest checks in"] + [f"text {i}" for i in range(100)]
        vectors = worker.embed(texts)
        assert vectors.shape == (103, 32) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(vectors[0], vectors[2], rtol=1e-5)
        assert not np.allclose(vectors[0], vectors[1])
        single = worker.embed(["exchange rules"])  # batching does not change a text's vector
        np.testing.assert_allclose(single[0], vectors[1], atol=1e-5)
        assert worker.embed([]).shape == (0, 32)
        with pytest.raises(InvalidInput, match="list of strings"):
            worker.embed([3])  # type: ignore[list-item]
        assert worker.embed(["still serving"]).shape == (1, 32)


@pytest.mark.slow  # an embedding worker process
def test_embedding_worker_refuses_a_directory_without_modules_json(tmp_path):
    with pytest.raises(InvalidInput, match="modules.json"):
        WorkerProcess(WorkerSpec("ghost", str(tmp_path), task="embed"))


def test_knowledge_base_edge_modules_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, tuneforge.api.app, tuneforge.cli.kb, tuneforge.knowledge.service, tuneforge.knowledge.retrieve, "
        "tuneforge.knowledge.generate, tuneforge.knowledge.ingest\n"
        "loaded = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
