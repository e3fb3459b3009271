"""A CreateModelInvocationJob request, typed: what the API and the CLI hand to BatchService.create."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class InvocationType(StrEnum):
    """How each record's modelInput is read and its modelOutput shaped (botocore's ModelInvocationType)."""

    INVOKE_MODEL = "InvokeModel"  # the model's native InvokeModel body (Llama 2 or Titan)
    CONVERSE = "Converse"  # a Converse request: messages, system, inferenceConfig


DEFAULT_TIMEOUT_HOURS = 24  # Bedrock's default timeoutDurationInHours; it allows 24-168


@dataclass(frozen=True)
class BatchJobRequest:
    job_name: str
    role_arn: str
    model_id: str
    input_uri: str  # inputDataConfig.s3InputDataConfig.s3Uri: one .jsonl object, or a folder of them
    output_uri: str  # outputDataConfig.s3OutputDataConfig.s3Uri: the job writes under <it>/<jobId>/
    invocation_type: str = InvocationType.INVOKE_MODEL.value
    input_format: str | None = None  # s3InputFormat: JSONL is the only one
    input_bucket_owner: str | None = None
    output_bucket_owner: str | None = None
    output_kms_key_id: str | None = None
    vpc_config: dict | None = None
    timeout_hours: int | None = None
    client_request_token: str | None = None
    tags: tuple[tuple[str, str], ...] = field(default_factory=tuple)
