"""What a job that runs its own model worker (batch inference, evaluation) loads for a model identifier.

A foundation model (id, ARN, alias) or custom model (name, id, ARN) is loaded as it is; a provisioned model or a custom
model deployment loads the model it serves now. Such a job never borrows the server's workers: it runs in its own
process, maybe on another host.
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.catalog.entries import BodyFormat
from tuneforge.catalog.service import body_format_for_bedrock_id
from tuneforge.errors import NotFound
from tuneforge.ids import ArnType, parse_arn
from tuneforge.models.resolve import LOADABLE, CustomRef, FoundationRef, Kind, ModelResolver, ProvisionedRef
from tuneforge.serving.custom_deployments import CustomModelDeployments


@dataclass(frozen=True)
class LoadableModel:
    ref: FoundationRef | CustomRef
    body_format: BodyFormat | None  # None: either family, told apart by each body


def loadable_model(models: ModelResolver, deployments: CustomModelDeployments, model_id: str, *,
                   field: str = "modelId") -> LoadableModel:
    arn = parse_arn(model_id)
    if arn is not None and arn.type is ArnType.CUSTOM_MODEL_DEPLOYMENT:
        deployment = deployments.find(model_id)
        if deployment is None:
            raise NotFound(f"no custom model deployment {model_id!r}: see ListCustomModelDeployments", field=field)
        return LoadableModel(models.resolve(deployment.model_arn, kinds=(Kind.CUSTOM,), field=field), None)
    found = models.resolve(model_id, field=field)
    if isinstance(found, ProvisionedRef):
        return LoadableModel(models.resolve(found.row.model_arn, kinds=LOADABLE, field=field), None)
    # a Bedrock model id speaks only its own family, as in InvokeModel; any other takes either
    return LoadableModel(found, found.entry.body_format if body_format_for_bedrock_id(found.entry.model_id) else None)
