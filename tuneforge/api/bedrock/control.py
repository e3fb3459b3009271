"""The `bedrock` control plane: foundation models, customization jobs, custom models, provisioned throughput, batch
inference jobs.

Each handler parses nothing itself (tuneforge.api.aws.protocol did, from botocore's model), calls one service
function and shapes the reply like Bedrock's output shape.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from tuneforge.api.services import services
from tuneforge.batch.request import BatchJobRequest
from tuneforge.catalog.entries import Customization, InferenceType, Modality
from tuneforge.errors import InvalidInput
from tuneforge.jobs.spec import JobRequest
from tuneforge.wire.evaluation import evaluation_job, evaluation_request, evaluation_summary
from tuneforge.wire.batch import job_detail as batch_job_detail, job_summary as batch_job_summary
from tuneforge.wire.deployments import custom_deployment_detail, custom_deployment_summary, deployment_detail, deployment_summary
from tuneforge.wire.jobs import job_detail, job_summary, model_detail, model_summary


def _enum(cls, value: str | None, field: str):
    if value is None:
        return None
    try:
        return cls(value)
    except ValueError:
        raise InvalidInput(f"{field} must be one of {', '.join(m.value for m in cls)}, got {value!r}", field=field) from None


def _sort_ascending(params: dict[str, Any]) -> bool:
    if params.get("sortBy", "CreationTime") != "CreationTime":
        raise InvalidInput("sortBy must be CreationTime", field="sortBy")
    order = params.get("sortOrder", "Descending")
    if order not in ("Ascending", "Descending"):
        raise InvalidInput(f"sortOrder must be Ascending or Descending, got {order!r}", field="sortOrder")
    return order == "Ascending"


def list_foundation_models(request: Request, params: dict[str, Any]) -> dict:
    s = services(request)
    models = s.catalog.list(
        provider=params.get("byProvider"),
        customization=_enum(Customization, params.get("byCustomizationType"), "byCustomizationType"),
        inference_type=_enum(InferenceType, params.get("byInferenceType"), "byInferenceType"),
        output_modality=_enum(Modality, params.get("byOutputModality"), "byOutputModality"),
    )
    return {"modelSummaries": [m.to_summary(s.settings.region) for m in models]}


def get_foundation_model(request: Request, params: dict[str, Any]) -> dict:
    s = services(request)
    return {"modelDetails": s.catalog.get(params["modelIdentifier"]).to_summary(s.settings.region)}


def create_model_customization_job(request: Request, params: dict[str, Any]) -> dict:
    validation = (params.get("validationDataConfig") or {}).get("validators") or []
    job = services(request).jobs.create(JobRequest(
        job_name=params["jobName"],
        custom_model_name=params["customModelName"],
        role_arn=params["roleArn"],
        base_model_identifier=params["baseModelIdentifier"],
        customization_type=params.get("customizationType", "FINE_TUNING"),
        training_data_uri=params["trainingDataConfig"].get("s3Uri", ""),
        validation_data_uris=tuple(v["s3Uri"] for v in validation),
        output_uri=params["outputDataConfig"]["s3Uri"],
        hyperparameters=params.get("hyperParameters") or {},
        client_request_token=params.get("clientRequestToken"),
        kms_key_id=params.get("customModelKmsKeyId"),
        job_tags=tuple((t["key"], t["value"]) for t in params.get("jobTags") or []),
        custom_model_tags=tuple((t["key"], t["value"]) for t in params.get("customModelTags") or []),
    ))
    return {"jobArn": job.job_arn}


def get_model_customization_job(request: Request, params: dict[str, Any]) -> dict:
    return job_detail(services(request).jobs.get(params["jobIdentifier"]))


def list_model_customization_jobs(request: Request, params: dict[str, Any]) -> dict:
    found = services(request).jobs.list(
        status=params.get("statusEquals"), name_contains=params.get("nameContains"),
        created_after=params.get("creationTimeAfter"), created_before=params.get("creationTimeBefore"),
        ascending=_sort_ascending(params), max_results=params.get("maxResults"), next_token=params.get("nextToken"),
    )
    reply: dict[str, Any] = {"modelCustomizationJobSummaries": [job_summary(j) for j in found.jobs]}
    if found.next_token:
        reply["nextToken"] = found.next_token
    return reply


def stop_model_customization_job(request: Request, params: dict[str, Any]) -> dict:
    services(request).jobs.stop(params["jobIdentifier"], wait=False)
    return {}


def get_custom_model(request: Request, params: dict[str, Any]) -> dict:
    return model_detail(services(request).registry.get(params["modelIdentifier"]))


def list_custom_models(request: Request, params: dict[str, Any]) -> dict:
    s = services(request)
    found = s.registry.list(
        name_contains=params.get("nameContains"), base_model_arn=params.get("baseModelArnEquals") or params.get("foundationModelArnEquals"),
        status=params.get("modelStatus"), created_after=params.get("creationTimeAfter"),
        created_before=params.get("creationTimeBefore"), ascending=_sort_ascending(params),
        max_results=params.get("maxResults"), next_token=params.get("nextToken"),
    )
    reply: dict[str, Any] = {"modelSummaries": [model_summary(m, s.catalog.get(m.base_model_id).model_name) for m in found.models]}
    if found.next_token:
        reply["nextToken"] = found.next_token
    return reply


def delete_custom_model(request: Request, params: dict[str, Any]) -> dict:
    services(request).registry.delete(params["modelIdentifier"])
    return {}


def create_provisioned_model_throughput(request: Request, params: dict[str, Any]) -> dict:
    row = services(request).deployments.create(
        name=params["provisionedModelName"], model_id=params["modelId"], units=params["modelUnits"],
        commitment=params.get("commitmentDuration"), client_request_token=params.get("clientRequestToken"),
        tags=tuple((t["key"], t["value"]) for t in params.get("tags") or []),
    )
    return {"provisionedModelArn": row.provisioned_model_arn}


def get_provisioned_model_throughput(request: Request, params: dict[str, Any]) -> dict:
    return deployment_detail(services(request).deployments.get(params["provisionedModelId"]))


def list_provisioned_model_throughputs(request: Request, params: dict[str, Any]) -> dict:
    found = services(request).deployments.list(
        status=params.get("statusEquals"), name_contains=params.get("nameContains"), model_arn=params.get("modelArnEquals"),
        created_after=params.get("creationTimeAfter"), created_before=params.get("creationTimeBefore"),
        ascending=_sort_ascending(params), max_results=params.get("maxResults"), next_token=params.get("nextToken"),
    )
    reply: dict[str, Any] = {"provisionedModelSummaries": [deployment_summary(d) for d in found.deployments]}
    if found.next_token:
        reply["nextToken"] = found.next_token
    return reply


def update_provisioned_model_throughput(request: Request, params: dict[str, Any]) -> dict:
    services(request).deployments.update(
        params["provisionedModelId"], name=params.get("desiredProvisionedModelName"), model_id=params.get("desiredModelId"),
    )
    return {}


def delete_provisioned_model_throughput(request: Request, params: dict[str, Any]) -> dict:
    services(request).deployments.delete(params["provisionedModelId"])
    return {}


def create_custom_model_deployment(request: Request, params: dict[str, Any]) -> dict:
    row = services(request).custom_deployments.create(
        name=params["modelDeploymentName"], model_arn=params["modelArn"], description=params.get("description"),
        client_request_token=params.get("clientRequestToken"), tags=tuple((t["key"], t["value"]) for t in params.get("tags") or []),
    )
    return {"customModelDeploymentArn": row.deployment_arn}


def get_custom_model_deployment(request: Request, params: dict[str, Any]) -> dict:
    return custom_deployment_detail(services(request).custom_deployments.get(params["customModelDeploymentIdentifier"]))


def list_custom_model_deployments(request: Request, params: dict[str, Any]) -> dict:
    found = services(request).custom_deployments.list(
        status=params.get("statusEquals"), name_contains=params.get("nameContains"), model_arn=params.get("modelArnEquals"),
        created_after=params.get("createdAfter"), created_before=params.get("createdBefore"), ascending=_sort_ascending(params),
        max_results=params.get("maxResults"), next_token=params.get("nextToken"),
    )
    reply: dict[str, Any] = {"modelDeploymentSummaries": [custom_deployment_summary(d) for d in found.deployments]}
    if found.next_token:
        reply["nextToken"] = found.next_token
    return reply


def update_custom_model_deployment(request: Request, params: dict[str, Any]) -> dict:
    row = services(request).custom_deployments.update(params["customModelDeploymentIdentifier"], model_arn=params["modelArn"])
    return {"customModelDeploymentArn": row.deployment_arn}


def delete_custom_model_deployment(request: Request, params: dict[str, Any]) -> dict:
    services(request).custom_deployments.delete(params["customModelDeploymentIdentifier"])
    return {}


def create_model_invocation_job(request: Request, params: dict[str, Any]) -> dict:
    source = params["inputDataConfig"].get("s3InputDataConfig") or {}
    target = params["outputDataConfig"].get("s3OutputDataConfig") or {}
    for config, name in ((source, "inputDataConfig.s3InputDataConfig"), (target, "outputDataConfig.s3OutputDataConfig")):
        if not config.get("s3Uri"):
            raise InvalidInput(f"{name}.s3Uri is required", field=f"{name}.s3Uri")
    job = services(request).batch.create(BatchJobRequest(
        job_name=params["jobName"], role_arn=params["roleArn"], model_id=params["modelId"],
        input_uri=source["s3Uri"], output_uri=target["s3Uri"],
        invocation_type=params.get("modelInvocationType", "InvokeModel"), input_format=source.get("s3InputFormat"),
        input_bucket_owner=source.get("s3BucketOwner"), output_bucket_owner=target.get("s3BucketOwner"),
        output_kms_key_id=target.get("s3EncryptionKeyId"), vpc_config=params.get("vpcConfig"),
        timeout_hours=params.get("timeoutDurationInHours"), client_request_token=params.get("clientRequestToken"),
        tags=tuple((t["key"], t["value"]) for t in params.get("tags") or []),
    ))
    return {"jobArn": job.job_arn}


def get_model_invocation_job(request: Request, params: dict[str, Any]) -> dict:
    return batch_job_detail(services(request).batch.get(params["jobIdentifier"]))


def list_model_invocation_jobs(request: Request, params: dict[str, Any]) -> dict:
    found = services(request).batch.list(
        status=params.get("statusEquals"), name_contains=params.get("nameContains"),
        submitted_after=params.get("submitTimeAfter"), submitted_before=params.get("submitTimeBefore"),
        ascending=_sort_ascending(params), max_results=params.get("maxResults"), next_token=params.get("nextToken"),
    )
    reply: dict[str, Any] = {"invocationJobSummaries": [batch_job_summary(j) for j in found.jobs]}
    if found.next_token:
        reply["nextToken"] = found.next_token
    return reply


def stop_model_invocation_job(request: Request, params: dict[str, Any]) -> dict:
    services(request).batch.stop(params["jobIdentifier"], wait=False)
    return {}


def create_evaluation_job(request: Request, params: dict[str, Any]) -> dict:
    return {"jobArn": services(request).evaluations.create(evaluation_request(params)).job_arn}


def get_evaluation_job(request: Request, params: dict[str, Any]) -> dict:
    return evaluation_job(services(request).evaluations.get(params["jobIdentifier"]))


def list_evaluation_jobs(request: Request, params: dict[str, Any]) -> dict:
    found = services(request).evaluations.list(status=params.get("statusEquals"), name_contains=params.get("nameContains"),
                                               ascending=_sort_ascending(params), max_results=params.get("maxResults"),
                                               next_token=params.get("nextToken"))
    reply: dict[str, Any] = {"jobSummaries": [evaluation_summary(j) for j in found.jobs]}
    if found.next_token:
        reply["nextToken"] = found.next_token
    return reply


def stop_evaluation_job(request: Request, params: dict[str, Any]) -> dict:
    services(request).evaluations.stop(params["jobIdentifier"])
    return {}


def batch_delete_evaluation_job(request: Request, params: dict[str, Any]) -> dict:
    deleted, errors = services(request).evaluations.batch_delete(params["jobIdentifiers"])
    return {"errors": [{"jobIdentifier": i, "code": code, "message": message} for i, code, message in errors],
            "evaluationJobs": [{"jobIdentifier": row.job_arn, "jobStatus": "Deleting"} for row in deleted]}


HANDLERS = {
    "CreateEvaluationJob": create_evaluation_job,
    "GetEvaluationJob": get_evaluation_job,
    "ListEvaluationJobs": list_evaluation_jobs,
    "StopEvaluationJob": stop_evaluation_job,
    "BatchDeleteEvaluationJob": batch_delete_evaluation_job,
    "CreateModelInvocationJob": create_model_invocation_job,
    "GetModelInvocationJob": get_model_invocation_job,
    "ListModelInvocationJobs": list_model_invocation_jobs,
    "StopModelInvocationJob": stop_model_invocation_job,
    "CreateCustomModelDeployment": create_custom_model_deployment,
    "GetCustomModelDeployment": get_custom_model_deployment,
    "ListCustomModelDeployments": list_custom_model_deployments,
    "UpdateCustomModelDeployment": update_custom_model_deployment,
    "DeleteCustomModelDeployment": delete_custom_model_deployment,
    "ListFoundationModels": list_foundation_models,
    "GetFoundationModel": get_foundation_model,
    "CreateModelCustomizationJob": create_model_customization_job,
    "GetModelCustomizationJob": get_model_customization_job,
    "ListModelCustomizationJobs": list_model_customization_jobs,
    "StopModelCustomizationJob": stop_model_customization_job,
    "GetCustomModel": get_custom_model,
    "ListCustomModels": list_custom_models,
    "DeleteCustomModel": delete_custom_model,
    "CreateProvisionedModelThroughput": create_provisioned_model_throughput,
    "GetProvisionedModelThroughput": get_provisioned_model_throughput,
    "ListProvisionedModelThroughputs": list_provisioned_model_throughputs,
    "UpdateProvisionedModelThroughput": update_provisioned_model_throughput,
    "DeleteProvisionedModelThroughput": delete_provisioned_model_throughput,
}
