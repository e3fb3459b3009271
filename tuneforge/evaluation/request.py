"""A CreateEvaluationJob request, typed (built by tuneforge.wire.evaluation from the wire), and its dataset's records.

Dataset lines, Bedrock's model-evaluation format: {"prompt": str, "referenceResponse"?: str, "category"?: str,
"modelResponses"?: [{"response": str, "modelIdentifier": str}]} (the last for precomputed responses).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from tuneforge import storage
from tuneforge.errors import InvalidInput
from tuneforge.evaluation.metrics import CustomMetric

MAX_RECORDS = 1000  # Bedrock's limit on a custom prompt dataset


@dataclass(frozen=True)
class TaskConfig:
    task_type: str
    dataset_name: str
    dataset_uri: str
    metric_names: tuple[str, ...]


@dataclass(frozen=True)
class ModelConfig:
    identifier: str  # a model id/ARN/alias, custom model, provisioned model, deployment; or a precomputed source's name
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    precomputed: bool = False  # its responses are the dataset's modelResponses with this modelIdentifier


@dataclass(frozen=True)
class EvaluationJobRequest:
    job_name: str
    role_arn: str
    tasks: tuple[TaskConfig, ...]
    models: tuple[ModelConfig, ...]
    output_uri: str
    evaluator_models: tuple[str, ...] = ()
    custom_metrics: dict[str, CustomMetric] = field(default_factory=dict)
    custom_evaluator_models: tuple[str, ...] = ()
    description: str | None = None
    client_request_token: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    raw_evaluation_config: dict = field(default_factory=dict)  # as sent, for GetEvaluationJob
    raw_inference_config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Record:
    line: int
    prompt: str
    reference: str | None
    category: str | None
    responses: dict[str, str]  # precomputed: modelIdentifier -> response
    raw: dict


def read_dataset(uri: str, *, field_name: str) -> list[Record]:
    """Every record of a dataset, or InvalidInput naming the line and the key."""
    try:
        text = storage.read_bytes(uri).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{field_name}: {uri} is not UTF-8 text", field=field_name) from None
    records: list[Record] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{field_name}: {uri} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not JSON ({exc.msg})", field=field_name) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str) or not obj["prompt"].strip():
            raise InvalidInput(f'{where} [prompt]: every record needs a non-empty "prompt" string', field=field_name)
        for key in ("referenceResponse", "category"):
            if key in obj and not isinstance(obj[key], str):
                raise InvalidInput(f"{where} [{key}]: must be a string", field=field_name)
        responses: dict[str, str] = {}
        for i, item in enumerate(obj.get("modelResponses") or []):
            if not isinstance(item, dict) or not isinstance(item.get("response"), str) or not isinstance(item.get("modelIdentifier"), str):
                raise InvalidInput(f'{where} [modelResponses[{i}]]: must be {{"response": str, "modelIdentifier": str}}', field=field_name)
            responses[item["modelIdentifier"]] = item["response"]
        records.append(Record(number, obj["prompt"], obj.get("referenceResponse"), obj.get("category"), responses, obj))
    if not records:
        raise InvalidInput(f"{field_name}: {uri} holds no records: one JSON object with a \"prompt\" per line", field=field_name)
    if len(records) > MAX_RECORDS:
        raise InvalidInput(f"{field_name}: at most {MAX_RECORDS} records per dataset, got {len(records)}", field=field_name)
    return records


def to_plan(request: EvaluationJobRequest) -> dict:
    """The request as JSON, for the job's process (the raw wire configs are kept apart, for GetEvaluationJob)."""
    plan = asdict(request)
    for key in ("raw_evaluation_config", "raw_inference_config", "tags", "client_request_token"):
        plan.pop(key)
    return plan


def from_plan(plan: dict) -> EvaluationJobRequest:
    return EvaluationJobRequest(
        job_name=plan["job_name"], role_arn=plan["role_arn"], output_uri=plan["output_uri"], description=plan["description"],
        tasks=tuple(TaskConfig(t["task_type"], t["dataset_name"], t["dataset_uri"], tuple(t["metric_names"])) for t in plan["tasks"]),
        models=tuple(ModelConfig(**m) for m in plan["models"]), evaluator_models=tuple(plan["evaluator_models"]),
        custom_metrics={name: CustomMetric(m["name"], m["instructions"], tuple(tuple(x) for x in m["scale"]))
                        for name, m in plan["custom_metrics"].items()},
        custom_evaluator_models=tuple(plan["custom_evaluator_models"]),
    )
