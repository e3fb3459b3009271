"""CreateEvaluationJob's wire shapes: the request turned into tuneforge.evaluation.request's types (every problem
naming its member), and the job rows back into GetEvaluationJob and EvaluationSummary."""

from __future__ import annotations

import json
from typing import Any

from tuneforge.db.tables import EvaluationJobRow
from tuneforge.errors import InvalidInput
from tuneforge.evaluation.metrics import TASK_TYPES, CustomMetric, check_metric_names, is_judged
from tuneforge.evaluation.request import EvaluationJobRequest, ModelConfig, TaskConfig
from tuneforge.wire.timestamps import timestamp

AUTOMATED = "evaluationConfig.automated"


def evaluation_request(params: dict[str, Any]) -> EvaluationJobRequest:
    config = params.get("evaluationConfig") or {}
    if "human" in config:
        raise InvalidInput("evaluationConfig.human: tuneforge runs automated evaluation jobs; use evaluationConfig.automated",
                           field="evaluationConfig.human")
    automated = config.get("automated")
    if not automated:
        raise InvalidInput("evaluationConfig.automated is required", field=AUTOMATED)
    if params.get("applicationType", "ModelEvaluation") != "ModelEvaluation":
        raise InvalidInput("applicationType: RagEvaluation is not available yet; evaluate models (ModelEvaluation)",
                           field="applicationType")
    custom: dict[str, CustomMetric] = {}
    custom_config = automated.get("customMetricConfig") or {}
    for i, item in enumerate(custom_config.get("customMetrics") or []):
        definition = (item or {}).get("customMetricDefinition") or {}
        scale = tuple((r.get("definition", ""), float((r.get("value") or {}).get("floatValue", 0))) for r in definition.get("ratingScale") or [])
        custom[definition["name"]] = CustomMetric(definition["name"], definition["instructions"], scale)
    tasks = []
    for i, item in enumerate(automated.get("datasetMetricConfigs") or []):
        where = f"{AUTOMATED}.datasetMetricConfigs[{i}]"
        if item["taskType"] not in TASK_TYPES:
            raise InvalidInput(f"{where}.taskType must be one of {', '.join(TASK_TYPES)}", field=f"{where}.taskType")
        location = (item["dataset"].get("datasetLocation") or {}).get("s3Uri")
        if not location:
            raise InvalidInput(f"{where}.dataset.datasetLocation.s3Uri: give your dataset's location (Bedrock's built-in "
                               "datasets are not shipped)", field=f"{where}.dataset.datasetLocation.s3Uri")
        check_metric_names(item["metricNames"], custom, where=where)
        tasks.append(TaskConfig(item["taskType"], item["dataset"]["name"], location, tuple(item["metricNames"])))
    evaluators = tuple(m["modelIdentifier"] for m in (automated.get("evaluatorModelConfig") or {}).get("bedrockEvaluatorModels") or [])
    custom_evaluators = tuple(m["modelIdentifier"] for m in
                              ((custom_config.get("evaluatorModelConfig") or {}).get("bedrockEvaluatorModels") or []))
    if any(is_judged(n, custom) and n not in custom for t in tasks for n in t.metric_names) and not evaluators:
        raise InvalidInput(f"{AUTOMATED}.evaluatorModelConfig.bedrockEvaluatorModels: a judge metric (Builtin.Correctness, "
                           "...) needs an evaluator model", field=f"{AUTOMATED}.evaluatorModelConfig")
    models = []
    for i, item in enumerate((params.get("inferenceConfig") or {}).get("models") or []):
        where = f"inferenceConfig.models[{i}]"
        if "precomputedInferenceSource" in item:
            models.append(ModelConfig(item["precomputedInferenceSource"]["inferenceSourceIdentifier"], precomputed=True))
            continue
        bedrock = item.get("bedrockModel")
        if not bedrock:
            raise InvalidInput(f"{where}: give bedrockModel or precomputedInferenceSource", field=where)
        models.append(ModelConfig(bedrock["modelIdentifier"], **_inference_params(bedrock.get("inferenceParams"), f"{where}.bedrockModel")))
    if not models:
        raise InvalidInput("inferenceConfig.models: give at least one model (tuneforge evaluates several side by side)",
                           field="inferenceConfig.models")
    return EvaluationJobRequest(
        job_name=params["jobName"], role_arn=params["roleArn"], tasks=tuple(tasks), models=tuple(models),
        output_uri=params["outputDataConfig"]["s3Uri"], evaluator_models=evaluators, custom_metrics=custom,
        custom_evaluator_models=custom_evaluators, description=params.get("jobDescription"),
        client_request_token=params.get("clientRequestToken"),
        tags=tuple((t["key"], t["value"]) for t in params.get("jobTags") or []),
        raw_evaluation_config=config, raw_inference_config=params.get("inferenceConfig") or {},
    )


def _inference_params(raw: str | None, where: str) -> dict:
    """Bedrock's inferenceParams: a JSON string, {"inferenceConfig": {"maxTokens", "temperature", "topP"}}."""
    if not raw:
        return {}
    try:
        config = json.loads(raw).get("inferenceConfig") or {}
    except (json.JSONDecodeError, AttributeError):
        raise InvalidInput(f'{where}.inferenceParams: must be a JSON string such as {{"inferenceConfig": {{"maxTokens": 256}}}}',
                           field=f"{where}.inferenceParams") from None
    out: dict = {}
    for wire, name, kind in (("maxTokens", "max_tokens", int), ("temperature", "temperature", float), ("topP", "top_p", float)):
        if wire in config:
            if not isinstance(config[wire], (int, float)) or isinstance(config[wire], bool):
                raise InvalidInput(f"{where}.inferenceParams.inferenceConfig.{wire}: must be a number", field=f"{where}.inferenceParams")
            out[name] = kind(config[wire])
    return out


def evaluation_job(row: EvaluationJobRow) -> dict:
    return {
        "jobName": row.job_name, "status": row.status, "jobArn": row.job_arn, "roleArn": row.role_arn,
        **({"jobDescription": row.description} if row.description else {}), "jobType": "Automated",
        "applicationType": row.application_type, "evaluationConfig": row.evaluation_config,
        "inferenceConfig": row.inference_config, "outputDataConfig": {"s3Uri": row.output_uri},
        "creationTime": timestamp(row.created_at), "lastModifiedTime": timestamp(row.updated_at),
        **({"failureMessages": row.failure_messages} if row.failure_messages else {}),
    }


def evaluation_summary(row: EvaluationJobRow) -> dict:
    automated = row.evaluation_config.get("automated") or {}
    models = [m.get("bedrockModel", {}).get("modelIdentifier") or m.get("precomputedInferenceSource", {}).get("inferenceSourceIdentifier")
              for m in row.inference_config.get("models") or []]
    evaluators = [m["modelIdentifier"] for m in (automated.get("evaluatorModelConfig") or {}).get("bedrockEvaluatorModels") or []]
    return {
        "jobArn": row.job_arn, "jobName": row.job_name, "status": row.status, "creationTime": timestamp(row.created_at),
        "jobType": "Automated", "evaluationTaskTypes": sorted({c["taskType"] for c in automated.get("datasetMetricConfigs") or []}),
        "modelIdentifiers": [m for m in models if m], **({"evaluatorModelIdentifiers": evaluators} if evaluators else {}),
        "applicationType": row.application_type,
    }
