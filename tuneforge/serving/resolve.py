"""Which worker serves a model id: shared by every protocol that generates text (Bedrock runtime, OpenAI).

What the id names is tuneforge.models.resolve's call (the same for the CLI, deployments and evaluation); this
module only picks the worker:
- A provisioned model (its ARN, or its name) is served by its deployment's workers (tuneforge.serving.supervisor).
- A foundation model (id, ARN or alias) is served on demand by the worker pool.
- An on-demand custom model deployment (its ARN) is served by the worker pool, which loads its custom model on first
  use (tuneforge.serving.custom_deployments).
- A custom model named directly is refused with the way to serve it, as in Bedrock: through a deployment; except for
  OpenAI's API, where a fine-tuned model is usable by its name at once (`custom_on_demand`), from the same pool worker
  its deployments would use.
Body family: a Bedrock model id (meta.llama*, amazon.titan-text*) speaks only its own, as in Bedrock; any other
id and every provisioned model take either family, told apart by the body (`body_format` None).
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.catalog.entries import BodyFormat
from tuneforge.catalog.service import body_format_for_bedrock_id
from tuneforge.errors import InvalidInput, NotFound
from tuneforge.ids import ArnType, parse_arn
from tuneforge.models.resolve import CustomRef, Kind, ModelResolver, ProvisionedRef
from tuneforge.serving.client import WorkerProcess
from tuneforge.serving.custom_deployments import CustomModelDeployments
from tuneforge.serving.pool import WorkerPool
from tuneforge.serving.supervisor import Supervisor


@dataclass(frozen=True)
class Target:
    worker: WorkerProcess
    model_id: str  # how metrics name it
    body_format: BodyFormat | None  # None: either family, by the body


@dataclass(frozen=True)
class Resolver:
    models: ModelResolver
    pool: WorkerPool
    supervisor: Supervisor
    on_demand: CustomModelDeployments

    def target(self, model_id: str, *, field: str = "modelId", custom_on_demand: bool = False) -> Target:
        arn = parse_arn(model_id)
        if arn is not None and arn.type is ArnType.CUSTOM_MODEL_DEPLOYMENT:
            return self._on_demand(model_id, field)
        found = self.models.find(model_id)
        if isinstance(found, ProvisionedRef):
            return Target(self.supervisor.route(found.row), found.row.provisioned_model_name, None)
        if isinstance(found, CustomRef) and custom_on_demand:
            return Target(self._custom_worker(found), found.row.model_name, None)
        # a custom-model ARN is refused whether or not it exists: the answer is the same (Bedrock's)
        if isinstance(found, CustomRef) or (arn is not None and arn.type is ArnType.CUSTOM_MODEL):
            raise InvalidInput(
                f"{model_id!r} is a custom model: invoke it through a provisioned throughput (CreateProvisionedModelThroughput, "
                "then its provisionedModelArn) or on demand (CreateCustomModelDeployment, then its customModelDeploymentArn)",
                field=field,
            )
        if found is None:
            raise NotFound(f"no model {model_id!r} to invoke: see `tuneforge models list` (ListFoundationModels) and "
                           "`tuneforge deployments list`, or register it with `tuneforge models add`", field=field)
        worker = self.pool.get(f"foundation:{found.base.model_id}", lambda: self.models.worker_spec(found))
        body_format = found.entry.body_format if body_format_for_bedrock_id(found.entry.model_id) else None
        return Target(worker, found.entry.model_id, body_format)

    def _on_demand(self, model_id: str, field: str) -> Target:
        deployment = self.on_demand.find(model_id)
        if deployment is None:
            raise NotFound(f"no custom model deployment {model_id!r}: see ListCustomModelDeployments", field=field)
        model = self.models.resolve(deployment.model_arn, kinds=(Kind.CUSTOM,), field=field)
        return Target(self._custom_worker(model), deployment.deployment_name, None)

    def _custom_worker(self, model: CustomRef) -> WorkerProcess:
        # keyed by the custom model: deployments of one model (and its OpenAI name) share its worker, as foundation models do
        return self.pool.get(f"custom:{model.arn}", lambda: self.models.worker_spec(model))
