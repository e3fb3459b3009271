"""One resolver (tuneforge.models.resolve): each kind of model identifier against a real catalog, a real registry
with a registered custom model and real provisioned-model records, in a temporary home (SQLite); the ARNs it
reads (tuneforge.ids.parse_arn); and the answers of the API's Resolver.target that need no worker."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuneforge.catalog.entries import BodyFormat
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database, session_scope
from tuneforge.db.tables import CustomizationJobRow, CustomModelRow, ProvisionedModelRow
from tuneforge.errors import Conflict, InvalidInput, ModelNotReady, NotFound
from tuneforge.ids import ArnType, custom_model_arn, foundation_model_arn, parse_arn, provisioned_model_arn
from tuneforge.models.resolve import LOADABLE, CustomRef, FoundationRef, Kind, ModelResolver, ProvisionedRef
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.serving.custom_deployments import CustomModelDeployments
from tuneforge.serving.deployments import DeploymentService
from tuneforge.serving.pool import WorkerPool
from tuneforge.serving.resolve import Resolver
from tuneforge.serving.supervisor import Supervisor
from tuneforge.settings import Settings, load_settings

ALIAS = "meta.llama2-13b-chat-v1"


@dataclass
class Home:
    settings: Settings
    catalog: Catalog
    registry: CustomModelRegistry
    deployments: DeploymentService
    models: ModelResolver
    custom: CustomModelRow  # "summarizer", a LoRA adapter on "tiny"
    provisioned: ProvisionedModelRow  # "hotel", serving the custom model
    tiny: Path


def register(registry: CustomModelRegistry, tmp_path: Path, job_id: str, name: str) -> CustomModelRow:
    artifact = tmp_path / f"artifact-{job_id}"
    artifact.mkdir()
    (artifact / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "target_modules": ["q_proj"]}))
    job = CustomizationJobRow(
        job_id=job_id, job_arn=f"arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tiny/{job_id}",
        job_name=f"job-{job_id}", custom_model_name=name, role_arn="arn:aws:iam::000000000000:role/t",
        base_model_id="tiny", base_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tiny",
        customization_type="FINE_TUNING", hyperparameters={}, training_data_uri="/data.jsonl", validation_data_uris=[],
        output_uri="/out", kms_key_id=None,
    )
    return registry.register(job, artifact_dir=artifact, artifact_kind="adapter", training_loss=None, validation_loss=None)


@pytest.fixture
def home(tmp_path: Path, tiny_model_dir: Path) -> Home:
    settings = load_settings(home=tmp_path / "home", database_url="")
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    catalog.add("tiny", str(tiny_model_dir))
    catalog.alias(ALIAS, "tiny")
    registry = CustomModelRegistry(settings, sessions)
    custom = register(registry, tmp_path, "abcdefghijkl", "summarizer")
    deployments = DeploymentService(settings, sessions, catalog, registry)
    provisioned = deployments.create(name="hotel", model_id="summarizer", units=1)
    return Home(settings, catalog, registry, deployments, deployments.models, custom, provisioned, tiny_model_dir)


# ---- ARNs ---------------------------------------------------------------------------------------
def test_parse_arn_reads_what_ids_mints(home):
    s = home.settings
    custom = parse_arn(custom_model_arn(s, "tiny", "abcdefghijkl"))
    assert (custom.type, custom.region, custom.account_id, custom.path, custom.resource_id) == (
        ArnType.CUSTOM_MODEL, s.region, s.account_id, "tiny/abcdefghijkl", "abcdefghijkl")
    foundation = parse_arn(foundation_model_arn("eu-west-1", "meta.llama3-70b-instruct-v1:0"))
    assert (foundation.type, foundation.account_id, foundation.resource_id) == (ArnType.FOUNDATION_MODEL, "", "meta.llama3-70b-instruct-v1:0")
    assert parse_arn(provisioned_model_arn(s, "k3v9q2m7x1ab")).type is ArnType.PROVISIONED_MODEL
    for not_ours in ("tiny", "summarizer", ALIAS, "arn:aws:kms:us-east-1:000000000000:key/abc", "arn:aws:bedrock:us-east-1:000000000000:agent/X"):
        assert parse_arn(not_ours) is None, not_ours


# ---- each kind of identifier --------------------------------------------------------------------
@pytest.mark.parametrize("identifier", ["tiny", "arn:aws:bedrock:us-east-1::foundation-model/tiny",
                                        "arn:aws:bedrock:eu-west-1::foundation-model/tiny"])
def test_a_foundation_model_by_id_or_arn(home, identifier):
    found = home.models.resolve(identifier)
    assert isinstance(found, FoundationRef) and found.kind is Kind.FOUNDATION
    assert (found.identifier, found.entry.model_id, found.base.model_id) == (identifier, "tiny", "tiny")
    assert found.arn == foundation_model_arn(home.settings.region, "tiny")
    spec = home.models.worker_spec(found, device="cpu", dtype="float32")
    assert (spec.model_id, spec.checkpoint, spec.adapter, spec.device, spec.dtype) == ("tiny", str(home.tiny), None, "cpu", "float32")


def test_an_alias_keeps_its_own_id_and_body_format_and_loads_its_target(home):
    found = home.models.resolve(ALIAS)
    assert isinstance(found, FoundationRef)
    assert (found.entry.model_id, found.entry.body_format, found.base.model_id) == (ALIAS, BodyFormat.LLAMA2, "tiny")
    assert found.arn == foundation_model_arn(home.settings.region, ALIAS)
    assert home.models.worker_spec(found).checkpoint == str(home.tiny)


def test_a_custom_model_by_name_id_or_arn(home):
    row = home.custom
    other_region = row.model_arn.replace(f":{home.settings.region}:", ":ap-south-1:")  # the id is what counts
    for identifier in ("summarizer", row.model_id, row.model_arn, other_region):
        found = home.models.resolve(identifier)
        assert isinstance(found, CustomRef) and found.kind is Kind.CUSTOM, identifier
        assert (found.row.model_id, found.arn, found.entry.model_id, found.base.model_id) == (row.model_id, row.model_arn, "tiny", "tiny")
    spec = home.models.worker_spec(found)
    assert (spec.model_id, spec.checkpoint, spec.adapter) == ("summarizer", str(home.tiny), row.artifact_dir)
    tokenizer = home.models.base_spec(found)  # a custom model keeps its base's tokenizer
    assert (tokenizer.model_id, tokenizer.checkpoint, tokenizer.adapter) == ("tiny", str(home.tiny), None)


def test_a_provisioned_model_by_arn_id_or_name(home):
    row = home.provisioned
    for identifier in (row.provisioned_model_arn, row.provisioned_model_id, "hotel"):
        found = home.models.resolve(identifier)
        assert isinstance(found, ProvisionedRef) and found.kind is Kind.PROVISIONED, identifier
        assert (found.row.provisioned_model_id, found.arn) == (row.provisioned_model_id, row.provisioned_model_arn)
        assert found.row.model_arn == home.custom.model_arn  # what it serves
    assert home.deployments.get("hotel").provisioned_model_id == row.provisioned_model_id  # the records read the same way


def test_lookup_order_catalog_then_provisioned_then_custom(home):
    same_as_custom = home.deployments.create(name="summarizer", model_id="tiny", units=1)
    same_as_catalog = home.deployments.create(name="tiny", model_id="tiny", units=1)
    assert home.models.resolve("summarizer").row.provisioned_model_id == same_as_custom.provisioned_model_id
    assert isinstance(home.models.resolve("summarizer", kinds=LOADABLE), CustomRef)  # only the kinds asked for
    assert isinstance(home.models.resolve("tiny"), FoundationRef)
    assert home.models.resolve(same_as_catalog.provisioned_model_arn).row.provisioned_model_name == "tiny"  # an ARN says which


# ---- errors ---------------------------------------------------------------------------------------
def test_an_unknown_id_names_where_to_look_and_the_field(home):
    with pytest.raises(NotFound) as err:
        home.models.resolve("nope.model-v1", field="MODEL")
    assert err.value.field == "MODEL"
    assert err.value.message == ("no foundation, custom or provisioned model 'nope.model-v1': see `tuneforge models list`, "
                                 "`tuneforge custom-models list` and `tuneforge deployments list`")
    with pytest.raises(NotFound, match="no foundation or custom model 'hotel': see `tuneforge models list` and `tuneforge custom-models list`"):
        home.models.resolve("hotel", kinds=LOADABLE)  # a provisioned model is not loadable
    assert home.models.find("nope.model-v1") is None


@pytest.mark.parametrize("identifier", [
    "arn:aws:bedrock:us-east-1:000000000000:custom-model/tiny/zzzzzzzzzzzz",  # no such custom model
    "arn:aws:bedrock:us-east-1::foundation-model/summarizer",  # a custom model's name in a foundation-model ARN
    "arn:aws:bedrock:us-east-1:000000000000:knowledge-base/ABCDEFGHIJ",  # not a model
])
def test_an_arn_is_looked_up_only_as_what_it_says(home, identifier):
    with pytest.raises(NotFound):
        home.models.resolve(identifier)


def test_an_arn_of_another_type_names_no_record(home):
    provisioned_arn = provisioned_model_arn(home.settings, home.custom.model_id)  # the custom model's id, another type
    with pytest.raises(NotFound, match="no custom model"):
        home.registry.get(provisioned_arn)
    assert home.deployments.find(home.custom.model_arn) is None


def test_a_custom_model_that_is_not_active_is_refused(home):
    with session_scope(home.registry.sessions) as session:
        session.get(CustomModelRow, home.custom.model_id).model_status = "Creating"
    assert isinstance(home.models.find("summarizer", kinds=LOADABLE), CustomRef)  # found, but not usable
    with pytest.raises(Conflict) as err:
        home.models.resolve("summarizer", field="--model")
    assert (err.value.message, err.value.field) == ("custom model 'summarizer' is Creating, not Active", "--model")
    with pytest.raises(Conflict, match="not Active") as err:
        home.deployments.create(name="again", model_id=home.custom.model_arn, units=1)
    assert err.value.field == "modelId"


# ---- the API's Resolver.target, where it answers without a worker ------------------------------------
@pytest.fixture
def resolver(home):
    pool = WorkerPool()
    on_demand = CustomModelDeployments(home.models.settings, home.models.sessions, home.models)
    yield Resolver(home.models, pool, Supervisor(home.deployments), on_demand)  # the supervisor is not started: no worker is
    pool.close()


@pytest.mark.parametrize("identifier", ["summarizer", "abcdefghijkl",
                                        "arn:aws:bedrock:us-east-1:000000000000:custom-model/tiny/zzzzzzzzzzzz"])
def test_target_refuses_a_custom_model_with_the_way_to_serve_it(resolver, identifier):
    with pytest.raises(InvalidInput, match="is a custom model: invoke it through a provisioned throughput") as err:
        resolver.target(identifier, field="model")
    assert err.value.field == "model"


def test_target_of_an_unknown_id_and_of_a_provisioned_model_not_yet_loaded(resolver, home):
    with pytest.raises(NotFound, match="no model 'nope.model-v1' to invoke") as err:
        resolver.target("nope.model-v1")
    assert err.value.field == "modelId"
    with pytest.raises(ModelNotReady, match="'hotel' is being created"):
        resolver.target(home.provisioned.provisioned_model_arn)


def test_target_of_an_unknown_custom_model_deployment(resolver):
    with pytest.raises(NotFound, match="no custom model deployment") as err:
        resolver.target("arn:aws:bedrock:us-east-1:000000000000:custom-model-deployment/zzzzzzzzzzzz")
    assert err.value.field == "modelId"
