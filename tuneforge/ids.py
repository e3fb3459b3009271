"""Resource ids and ARNs, spelled as Bedrock spells them. Every id and ARN tuneforge mints is made here.

    job_id = new_id()                                                  # "k3v9q2m7x1ab"
    job_arn(settings, "huggingfacetb.smollm2-135m-instruct-v1", job_id)
    # arn:aws:bedrock:us-east-1:123456789012:model-customization-job/huggingfacetb.smollm2-135m-instruct-v1/k3v9q2m7x1ab

Two id alphabets, as in Bedrock: the control plane (`bedrock`: customization jobs, custom models, provisioned
models) uses 12 characters of [a-z0-9]; the agent plane (`bedrock-agent`: knowledge bases, data sources,
ingestion jobs) uses 10 of [0-9A-Z]. Access key ids are minted by tuneforge.security.keys (AWS's own format).
Foundation-model ARNs have an empty account field, as in Bedrock. `parse_arn` reads them back: code asks an ARN
what it names (`parse_arn(arn).type is ArnType.CUSTOM_MODEL`) instead of looking for ":custom-model/" in it.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

_CONTROL_ALPHABET = string.ascii_lowercase + string.digits
_AGENT_ALPHABET = string.ascii_uppercase + string.digits


class ArnType(str, Enum):
    """The resource types of the ARNs tuneforge mints (the part before the first "/")."""

    FOUNDATION_MODEL = "foundation-model"
    CUSTOM_MODEL = "custom-model"
    PROVISIONED_MODEL = "provisioned-model"
    CUSTOM_MODEL_DEPLOYMENT = "custom-model-deployment"
    CUSTOMIZATION_JOB = "model-customization-job"
    INVOCATION_JOB = "model-invocation-job"
    EVALUATION_JOB = "evaluation-job"
    KNOWLEDGE_BASE = "knowledge-base"


@dataclass(frozen=True)
class Arn:
    type: ArnType
    region: str
    account_id: str  # empty for a foundation model
    path: str  # after "<type>/": a model id, "<base model id>/<model id>" for a custom model, ...

    @property
    def resource_id(self) -> str:
        """The resource's own id: the path's last segment (a custom model's id, not its base's)."""
        return self.path.rsplit("/", 1)[-1]


# any partition (aws, aws-cn, aws-us-gov): boto3 users elsewhere send their own partition's ARNs
_BEDROCK_ARN = re.compile(r"^arn:aws[a-z-]*:bedrock:(?P<region>[a-z0-9-]*):(?P<account>[0-9]*):(?P<type>[a-z-]+)/(?P<path>.+)$")
_TYPES = frozenset(t.value for t in ArnType)


class Account(Protocol):
    """Where ARNs point: tuneforge.settings.Settings has both."""

    region: str
    account_id: str


def new_id() -> str:
    """A control-plane resource id ([a-z0-9]{12})."""
    return "".join(secrets.choice(_CONTROL_ALPHABET) for _ in range(12))


def new_agent_id() -> str:
    """A knowledge-base resource id ([0-9A-Z]{10})."""
    return "".join(secrets.choice(_AGENT_ALPHABET) for _ in range(10))


def parse_arn(text: str) -> Arn | None:
    """The parts of a Bedrock ARN of one of tuneforge's resource types; None for anything else (a name, an id)."""
    match = _BEDROCK_ARN.match(text.strip())
    if match is None or match["type"] not in _TYPES:
        return None
    return Arn(ArnType(match["type"]), match["region"], match["account"], match["path"])


def foundation_model_arn(region: str, model_id: str) -> str:
    return f"arn:aws:bedrock:{region}::foundation-model/{model_id}"


def job_arn(account: Account, base_model_id: str, job_id: str) -> str:
    return f"arn:aws:bedrock:{account.region}:{account.account_id}:model-customization-job/{base_model_id}/{job_id}"


def evaluation_job_arn(account: Account, job_id: str) -> str:
    """An evaluation job (CreateEvaluationJob)."""
    return f"arn:aws:bedrock:{account.region}:{account.account_id}:evaluation-job/{job_id}"


def invocation_job_arn(account: Account, job_id: str) -> str:
    """A batch inference job (CreateModelInvocationJob): no model in the path, unlike a customization job's."""
    return f"arn:aws:bedrock:{account.region}:{account.account_id}:model-invocation-job/{job_id}"


def custom_model_arn(account: Account, base_model_id: str, model_id: str) -> str:
    return f"arn:aws:bedrock:{account.region}:{account.account_id}:custom-model/{base_model_id}/{model_id}"


def provisioned_model_arn(account: Account, provisioned_model_id: str) -> str:
    return f"arn:aws:bedrock:{account.region}:{account.account_id}:provisioned-model/{provisioned_model_id}"


def custom_model_deployment_arn(account: Account, deployment_id: str) -> str:
    return f"arn:aws:bedrock:{account.region}:{account.account_id}:custom-model-deployment/{deployment_id}"


def knowledge_base_arn(account: Account, kb_id: str) -> str:
    return f"arn:aws:bedrock:{account.region}:{account.account_id}:knowledge-base/{kb_id}"
