"""The default model: its GGUF file becomes a normal checkpoint that gives the same logits."""

import json

import pytest
import torch

from tuneforge.catalog.builtin import DEFAULT_MODEL_ID, BUILTIN_MODELS, package_path
from tuneforge.errors import InvalidInput
from tuneforge.inference.checkpoint import COMPLETE_MARKER, check_checkpoint_dir
from tuneforge.inference.materialize import load_gguf, materialize_gguf

pytestmark = pytest.mark.slow

GGUF = package_path(next(m for m in BUILTIN_MODELS if m.model_id == DEFAULT_MODEL_ID).source.location)


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    return materialize_gguf(GGUF, tmp_path_factory.mktemp("models") / DEFAULT_MODEL_ID)


def test_materialized_checkpoint_is_complete_and_plain(materialized):
    config = check_checkpoint_dir(materialized)
    assert "quantization_config" not in config
    assert (materialized / COMPLETE_MARKER).is_file() and (materialized / "model.safetensors").is_file()
    tokenizer_config = json.loads((materialized / "tokenizer_config.json").read_text())
    template = (materialized / "chat_template.jinja").read_text() if (materialized / "chat_template.jinja").exists() else tokenizer_config.get("chat_template")
    assert "<|im_start|>" in template


def test_same_logits_as_the_gguf_load(materialized):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_model, gguf_tokenizer = load_gguf(GGUF)
    model = AutoModelForCausalLM.from_pretrained(materialized, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(materialized)
    text = "The guest, John Sandals, checks in to room 507 and pays with a VISA card."
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert torch.equal(ids, gguf_tokenizer(text, return_tensors="pt").input_ids)
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, gguf_model(ids).logits)


def test_second_call_reuses_the_checkpoint(materialized):
    stamp = (materialized / "model.safetensors").stat().st_mtime_ns
    assert materialize_gguf(GGUF, materialized) == materialized
    assert (materialized / "model.safetensors").stat().st_mtime_ns == stamp


def test_corrupt_gguf_leaves_nothing_behind(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    target = tmp_path / "models" / "bad"
    with pytest.raises(InvalidInput, match="cannot read GGUF"):
        materialize_gguf(bad, target)
    assert not target.exists()
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] == []


def test_an_interrupted_materialization_is_redone(tmp_path, materialized):
    target = tmp_path / "models" / DEFAULT_MODEL_ID
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # half-written: no completion marker
    with pytest.raises(InvalidInput):
        check_checkpoint_dir(target)
    materialize_gguf(GGUF, target)
    assert (target / COMPLETE_MARKER).is_file()
    check_checkpoint_dir(target)
