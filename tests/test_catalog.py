import json
import shutil

import pytest

from tuneforge.catalog.builtin import DEFAULT_EMBEDDING_MODEL_ID, DEFAULT_MODEL_ID
from tuneforge.catalog.entries import BodyFormat, Customization, InferenceType, Modality, SourceKind
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.errors import Conflict, InvalidInput, NotFound, Unavailable
from tuneforge.models.specs import foundation_spec
from tuneforge.settings import load_settings


@pytest.fixture
def catalog(tmp_path, database_url):
    settings = load_settings(home=tmp_path / "home", database_url=database_url)
    return Catalog(settings, open_database(database_url))


def ids(models):
    return [m.model_id for m in models]


def test_builtins_are_listed_with_bedrock_fields(catalog):
    default = catalog.get(DEFAULT_MODEL_ID)
    assert set(default.customizations_supported) == {Customization.FINE_TUNING, Customization.CONTINUED_PRE_TRAINING,
                                                 Customization.PREFERENCE_TUNING}
    summary = default.to_summary("us-east-1")
    assert summary["modelArn"] == f"arn:aws:bedrock:us-east-1::foundation-model/{DEFAULT_MODEL_ID}"
    assert summary["modelLifecycle"] == {"status": "ACTIVE"}
    assert summary["responseStreamingSupported"] is True
    assert summary["inferenceTypesSupported"] == ["ON_DEMAND", "PROVISIONED"]
    embedding = catalog.get(DEFAULT_EMBEDDING_MODEL_ID)
    assert embedding.output_modalities == (Modality.EMBEDDING,)
    assert embedding.customizations_supported == ()


def test_filters(catalog):
    assert ids(catalog.list(provider="huggingfacetb")) == [DEFAULT_MODEL_ID]
    assert ids(catalog.list(provider="nobody")) == []
    assert ids(catalog.list(customization=Customization.CONTINUED_PRE_TRAINING)) == [DEFAULT_MODEL_ID]
    assert ids(catalog.list(output_modality=Modality.EMBEDDING)) == [DEFAULT_EMBEDDING_MODEL_ID]
    assert DEFAULT_EMBEDDING_MODEL_ID not in ids(catalog.list(inference_type=InferenceType.PROVISIONED))
    assert DEFAULT_EMBEDDING_MODEL_ID in ids(catalog.list(inference_type=InferenceType.ON_DEMAND))


def test_get_by_arn_and_unknown(catalog):
    assert catalog.get(f"arn:aws:bedrock:eu-west-1::foundation-model/{DEFAULT_MODEL_ID}").model_id == DEFAULT_MODEL_ID
    with pytest.raises(NotFound, match="tuneforge models list"):
        catalog.get("meta.llama2-13b-chat-v1")


def test_add_local_checkpoint_persists(catalog, tiny_model_dir, database_url):
    added = catalog.add("tiny-llama", str(tiny_model_dir), provider="Tests")
    assert added.source.kind is SourceKind.LOCAL
    assert added.context_length == 256
    again = Catalog(catalog.settings, open_database(database_url))  # a new process sees it too
    got = again.get("tiny-llama")
    assert got.provider_name == "Tests"
    assert set(got.customizations_supported) == {Customization.FINE_TUNING, Customization.CONTINUED_PRE_TRAINING,
                                                 Customization.PREFERENCE_TUNING}
    assert "tiny-llama" in ids(again.list(customization=Customization.FINE_TUNING))
    spec = foundation_spec(again, got)
    assert spec.checkpoint == str(tiny_model_dir) and spec.gguf is None


def test_add_rejects_bad_sources_and_keeps_nothing(catalog, tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "tokenizer.json").unlink()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(InvalidInput) as err:
        catalog.add("broken", str(broken))
    assert "config.json is not valid JSON" in err.value.message and "no tokenizer" in err.value.message
    with pytest.raises(NotFound, match="does not exist"):
        catalog.add("missing", str(tmp_path / "nope"))
    with pytest.raises(Unavailable, match="HF_HUB_OFFLINE"):
        catalog.add("from-hub", "HuggingFaceTB/SmolLM2-360M-Instruct")
    with pytest.raises(InvalidInput, match="model id"):
        catalog.add("bad id with spaces", str(tiny_model_dir))
    assert ids(catalog.list()) == [DEFAULT_MODEL_ID, DEFAULT_EMBEDDING_MODEL_ID]


def test_duplicate_ids_conflict(catalog, tiny_model_dir):
    catalog.add("tiny", str(tiny_model_dir))
    with pytest.raises(Conflict):
        catalog.add("tiny", str(tiny_model_dir))
    with pytest.raises(Conflict):
        catalog.add(DEFAULT_MODEL_ID, str(tiny_model_dir))


def test_aliases_map_bedrock_ids(catalog, tiny_model_dir):
    catalog.add("tiny", str(tiny_model_dir))
    llama = catalog.alias("meta.llama2-13b-chat-v1", "tiny")
    titan = catalog.alias("amazon.titan-text-express-v1", DEFAULT_MODEL_ID)
    assert (llama.provider_name, llama.body_format, llama.alias_of) == ("Meta", BodyFormat.LLAMA2, "tiny")
    assert (titan.provider_name, titan.body_format) == ("Amazon", BodyFormat.TITAN)
    assert ids(catalog.list(provider="Meta")) == ["meta.llama2-13b-chat-v1"]
    assert catalog.resolve("meta.llama2-13b-chat-v1").model_id == "tiny"
    assert foundation_spec(catalog, llama).checkpoint == str(tiny_model_dir)
    with pytest.raises(NotFound):
        catalog.alias("meta.llama2-70b-chat-v1", "no-such-model")
    with pytest.raises(Conflict):
        catalog.alias("meta.llama2-13b-chat-v1", "tiny")
    catalog.remove("meta.llama2-13b-chat-v1")
    assert ids(catalog.list(provider="Meta")) == []


def test_builtins_cannot_be_removed_and_embedding_cannot_generate(catalog):
    with pytest.raises(Conflict):
        catalog.remove(DEFAULT_MODEL_ID)
    with pytest.raises(InvalidInput, match="embedding"):
        foundation_spec(catalog, catalog.get(DEFAULT_EMBEDDING_MODEL_ID))


def test_default_model_resolves_to_the_packaged_gguf(catalog):
    spec = foundation_spec(catalog, catalog.get(DEFAULT_MODEL_ID))
    assert spec.gguf.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert spec.checkpoint.startswith(str(catalog.settings.models_dir))
    assert json.loads(spec.to_json())["model_id"] == DEFAULT_MODEL_ID
