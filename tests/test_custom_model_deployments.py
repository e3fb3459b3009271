"""On-demand custom model deployments (Bedrock's *CustomModelDeployment) through real boto3 clients and a real server.

Two custom models of the tiny base are registered from real PEFT adapters (random LoRA weights, large enough to
change greedy output), then deployed, invoked on the deployment's ARN, re-pointed and deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.api_server import ShapeChecker, tuneforge
from tuneforge.db import open_database
from tuneforge.db.tables import CustomizationJobRow
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.settings import load_settings

pytestmark = pytest.mark.server()
BODY = json.dumps({"prompt": "[INST] Where is room 507? [/INST]", "max_gen_len": 8, "temperature": 0})


def adapter(tiny: Path, target: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                                                    init_lora_weights=False))
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.5)  # far from zero: the adapter changes greedy output
    model.save_pretrained(target)
    for path in tiny.iterdir():  # a custom model carries its base's tokenizer and chat template
        if path.name.startswith(("tokenizer", "chat_template", "special_tokens")):
            shutil.copy(path, target / path.name)
    return target


@pytest.fixture(scope="module")
def custom_models(server, tiny_model_dir, tmp_path_factory) -> tuple[str, str]:
    """Two Active custom models of "tiny", registered in the server's database as a finished job would."""
    settings = load_settings(home=server.home, database_url="")
    registry = CustomModelRegistry(settings, open_database(settings.database_url))
    arns = []
    for i, job_id in enumerate(("cmdadaptera1", "cmdadapterb2")):
        artifact = adapter(tiny_model_dir, tmp_path_factory.mktemp("adapters") / job_id, seed=i)
        job = CustomizationJobRow(
            job_id=job_id, job_arn=f"arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tiny/{job_id}",
            job_name=f"job-{job_id}", custom_model_name=f"concierge-{i}", role_arn="arn:aws:iam::000000000000:role/t",
            base_model_id="tiny", base_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tiny",
            customization_type="FINE_TUNING", hyperparameters={}, training_data_uri="/data.jsonl", validation_data_uris=[],
            output_uri="/out", kms_key_id=None,
        )
        arns.append(registry.register(job, artifact_dir=artifact, artifact_kind="adapter", training_loss=None, validation_loss=None).model_arn)
    return arns[0], arns[1]


@pytest.fixture(scope="module")
def bedrock(server):
    client = server.client("bedrock")
    client.shapes = ShapeChecker(client)
    yield client
    assert client.shapes.problems == [], client.shapes.problems


def code(exc: ClientError) -> tuple[str, int]:
    return exc.value.response["Error"]["Code"], exc.value.response["ResponseMetadata"]["HTTPStatusCode"]


def generation(runtime, model_id: str) -> str:
    return json.loads(runtime.invoke_model(modelId=model_id, body=BODY)["body"].read())["generation"]


def test_deploy_invoke_repoint_delete(server, bedrock, custom_models):
    first, second = custom_models
    runtime = server.client("bedrock-runtime")
    arn = bedrock.create_custom_model_deployment(modelDeploymentName="concierge", modelArn=first, description="front desk",
                                                 tags=[{"key": "team", "value": "hotel"}], clientRequestToken="once-1")["customModelDeploymentArn"]
    assert ":custom-model-deployment/" in arn
    again = bedrock.create_custom_model_deployment(modelDeploymentName="concierge", modelArn=first, clientRequestToken="once-1")
    assert again["customModelDeploymentArn"] == arn  # a retried create is the same deployment
    got = bedrock.get_custom_model_deployment(customModelDeploymentIdentifier="concierge")
    assert (got["customModelDeploymentArn"], got["modelDeploymentName"], got["modelArn"], got["status"], got["description"]) == \
        (arn, "concierge", first, "Active", "front desk")
    listed = bedrock.list_custom_model_deployments(statusEquals="Active")["modelDeploymentSummaries"]
    assert [(d["customModelDeploymentArn"], d["customModelDeploymentName"]) for d in listed] == [(arn, "concierge")]
    assert bedrock.list_tags_for_resource(resourceARN=arn)["tags"] == [{"key": "team", "value": "hotel"}]

    base = generation(runtime, "tiny")
    tuned = generation(runtime, arn)
    assert tuned != base  # the adapter is applied
    streamed = "".join(json.loads(e["chunk"]["bytes"])["generation"]
                       for e in runtime.invoke_model_with_response_stream(modelId=arn, body=BODY)["body"])
    assert streamed == tuned

    with pytest.raises(ClientError) as err:  # in use by the deployment
        bedrock.delete_custom_model(modelIdentifier=first)
    assert code(err) == ("ConflictException", 400) and "concierge" in str(err.value)

    bedrock.update_custom_model_deployment(customModelDeploymentIdentifier=arn, modelArn=second)
    got = bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert got["modelArn"] == second and got["updateDetails"] == {"modelArn": second, "updateStatus": "UpdateCompleted"}
    assert generation(runtime, arn) not in (tuned, base)  # now the second adapter answers

    bedrock.delete_custom_model_deployment(customModelDeploymentIdentifier=arn)
    with pytest.raises(ClientError) as err:
        bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn)
    assert code(err) == ("ResourceNotFoundException", 404)
    with pytest.raises(ClientError) as err:
        runtime.invoke_model(modelId=arn, body=BODY)
    assert code(err) == ("ResourceNotFoundException", 404)


def test_bad_deployments_name_the_problem(bedrock, custom_models):
    first, _ = custom_models
    bedrock.create_custom_model_deployment(modelDeploymentName="taken", modelArn=first)
    cases = [
        ({"modelDeploymentName": "taken", "modelArn": first}, ("ConflictException", 400), "already exists"),
        ({"modelDeploymentName": "ghost", "modelArn": first.rsplit("/", 1)[0] + "/zzzzzzzzzzzz"}, ("ResourceNotFoundException", 404),
         "no custom model"),
        ({"modelDeploymentName": "base", "modelArn": "arn:aws:bedrock:us-east-1::foundation-model/tiny"},
         ("ResourceNotFoundException", 404), "no custom model"),
        ({"modelDeploymentName": "bad name!", "modelArn": first}, ("ValidationException", 400), "modelDeploymentName"),
    ]
    for kwargs, expected, says in cases:
        with pytest.raises(ClientError) as err:
            bedrock.create_custom_model_deployment(**kwargs)
        assert code(err) == expected and says in str(err.value), kwargs
    with pytest.raises(ClientError) as err:
        bedrock.update_custom_model_deployment(customModelDeploymentIdentifier="nope", modelArn=first)
    assert code(err) == ("ResourceNotFoundException", 404)
    bedrock.delete_custom_model_deployment(customModelDeploymentIdentifier="taken")


def test_the_cli_manages_them_in_the_same_store(server, bedrock, custom_models):
    first, second = custom_models
    created = json.loads(tuneforge(server.home, "custom-deployments", "create", "desk", "--model", first, "--json").stdout)
    arn = created["customModelDeploymentArn"]
    assert bedrock.get_custom_model_deployment(customModelDeploymentIdentifier=arn)["modelArn"] == first
    assert json.loads(tuneforge(server.home, "custom-deployments", "get", "desk", "--json").stdout)["customModelDeploymentArn"] == arn
    tuneforge(server.home, "custom-deployments", "update", "desk", "--model", second)
    listed = json.loads(tuneforge(server.home, "custom-deployments", "list", "--json").stdout)["modelDeploymentSummaries"]
    assert [(d["customModelDeploymentName"], d["modelArn"]) for d in listed] == [("desk", second)]
    assert "desk" in tuneforge(server.home, "custom-deployments", "list").stdout
    tuneforge(server.home, "custom-deployments", "delete", arn)
    assert bedrock.list_custom_model_deployments()["modelDeploymentSummaries"] == []
