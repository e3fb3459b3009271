"""A CreateModelCustomizationJob request, checked once at the edge (CLI or HTTP) before anything is stored.

Every problem is reported at once, each naming its Bedrock field. Data locations may be `s3://` URIs,
`file://` URIs or local paths (Bedrock's `s3Uri` fields accept all three here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tuneforge.errors import InvalidInput
from tuneforge.storage import parse_uri

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9+\-.])*$")
MODEL_NAME = re.compile(r"^([0-9a-zA-Z][_-]?)+$")
ROLE_ARN = re.compile(r"^arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+$")
# PREFERENCE_TUNING (DPO) is tuneforge's own: Bedrock's CustomizationType has no preference method
CUSTOMIZATION_TYPES = ("FINE_TUNING", "CONTINUED_PRE_TRAINING", "PREFERENCE_TUNING")
MAX_NAME = 63
MAX_VALIDATORS = 10  # Bedrock's validationDataConfig.validators limit
MAX_TAGS = 200
DEFAULT_ROLE_ARN = "arn:aws:iam::000000000000:role/tuneforge"  # the CLI needs none; Bedrock requires one


@dataclass(frozen=True)
class JobRequest:
    job_name: str
    custom_model_name: str
    base_model_identifier: str
    training_data_uri: str
    output_uri: str
    customization_type: str = "FINE_TUNING"
    role_arn: str = DEFAULT_ROLE_ARN
    validation_data_uris: tuple[str, ...] = ()
    hyperparameters: dict[str, str] = field(default_factory=dict)
    client_request_token: str | None = None
    kms_key_id: str | None = None
    job_tags: tuple[tuple[str, str], ...] = ()
    custom_model_tags: tuple[tuple[str, str], ...] = ()
    # OpenAI's /v1/fine_tuning/jobs: the uploaded files the job trains on, its suffix and metadata (None from Bedrock's API)
    training_file_id: str | None = None
    validation_file_id: str | None = None
    suffix: str | None = None
    metadata: dict[str, str] | None = None

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        _name(problems, "jobName", self.job_name, JOB_NAME)
        _name(problems, "customModelName", self.custom_model_name, MODEL_NAME)
        if not ROLE_ARN.match(self.role_arn or ""):
            problems.append(("roleArn", f"must be an IAM role ARN (arn:aws:iam::123456789012:role/NAME), got {self.role_arn!r}"))
        if not self.base_model_identifier:
            problems.append(("baseModelIdentifier", "is required: a model id or foundation-model ARN (tuneforge models list)"))
        if self.customization_type not in CUSTOMIZATION_TYPES:
            problems.append(("customizationType", f"must be one of {', '.join(CUSTOMIZATION_TYPES)}, got {self.customization_type!r}"))
        _location(problems, "trainingDataConfig.s3Uri", self.training_data_uri)
        _location(problems, "outputDataConfig.s3Uri", self.output_uri)
        if len(self.validation_data_uris) > MAX_VALIDATORS:
            problems.append(("validationDataConfig.validators", f"at most {MAX_VALIDATORS} validation files, got {len(self.validation_data_uris)}"))
        for i, uri in enumerate(self.validation_data_uris):
            _location(problems, f"validationDataConfig.validators[{i}].s3Uri", uri)
        if not isinstance(self.hyperparameters, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.hyperparameters.items()
        ):
            problems.append(("hyperParameters", "must map names to string values, e.g. {\"epochCount\": \"1\"}"))
        for where, tags in (("jobTags", self.job_tags), ("customModelTags", self.custom_model_tags)):
            if len(tags) > MAX_TAGS:
                problems.append((where, f"at most {MAX_TAGS} tags"))
            for key, value in tags:
                if not 1 <= len(key) <= 128 or len(value) > 256:
                    problems.append((where, f"tag keys are 1-128 characters and values at most 256: {key!r}"))
        if self.client_request_token is not None and not 1 <= len(self.client_request_token) <= 256:
            problems.append(("clientRequestToken", "must be 1-256 characters"))
        if problems:
            raise InvalidInput("; ".join(f"{f}: {m}" for f, m in problems), field=problems[0][0])


def _name(problems: list, field_name: str, value: str, pattern: re.Pattern) -> None:
    if not value or len(value) > MAX_NAME or not pattern.match(value):
        problems.append((field_name, f"must be 1-{MAX_NAME} letters, digits and hyphens (pattern {pattern.pattern}), got {value!r}"))


def _location(problems: list, field_name: str, uri: str) -> None:
    if not uri:
        problems.append((field_name, "is required: an s3:// URI, a file:// URI or a local path"))
        return
    try:
        parse_uri(uri)
    except InvalidInput as exc:
        problems.append((field_name, exc.message))
