"""Which worker serves a model id: shared by every protocol that generates text (Bedrock runtime, OpenAI).

- A provisioned model (its ARN, or its name) is served by its deployment's workers (tuneforge.serving.supervisor).
- A foundation model (id, ARN or alias) is served on demand by the worker pool.
- A custom model named directly is refused with the way to serve it, as in Bedrock: through a provisioned model.
Body family: a Bedrock model id (meta.llama*, amazon.titan-text*) speaks only its own, as in Bedrock; any other
id and every provisioned model take either family, told apart by the body (`body_format` None).
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.catalog.entries import BodyFormat, FoundationModel
from tuneforge.catalog.service import Catalog, body_format_for_bedrock_id
from tuneforge.errors import InvalidInput, NotFound
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.serving.client import WorkerProcess
from tuneforge.serving.deployments import DeploymentService
from tuneforge.serving.pool import WorkerPool
from tuneforge.serving.supervisor import Supervisor


@dataclass(frozen=True)
class Target:
    worker: WorkerProcess
    model_id: str  # how metrics name it
    body_format: BodyFormat | None  # None: either family, by the body


@dataclass(frozen=True)
class Resolver:
    catalog: Catalog
    registry: CustomModelRegistry
    pool: WorkerPool
    deployments: DeploymentService
    supervisor: Supervisor

    def target(self, model_id: str, *, field: str = "modelId") -> Target:
        entry = self._catalog_entry(model_id)
        if ":provisioned-model/" in model_id or entry is None:
            deployment = self.deployments.find(model_id)
            if deployment is not None:
                return Target(self.supervisor.route(deployment), deployment.provisioned_model_name, None)
        if ":custom-model/" in model_id or (entry is None and self._is_custom_model(model_id)):
            raise InvalidInput(
                f"{model_id!r} is a custom model: invoke it through a provisioned throughput "
                "(CreateProvisionedModelThroughput, then use its provisionedModelArn as the model id)", field=field,
            )
        if entry is None:
            raise NotFound(f"no model {model_id!r} to invoke: see `tuneforge models list` (ListFoundationModels) and "
                           "`tuneforge deployments list`, or register it with `tuneforge models add`", field=field)
        resolved = self.catalog.resolve(entry.model_id)
        worker = self.pool.get(f"foundation:{resolved.model_id}", lambda: self.catalog.worker_spec(resolved))
        return Target(worker, entry.model_id, entry.body_format if body_format_for_bedrock_id(entry.model_id) else None)

    def _catalog_entry(self, model_id: str) -> FoundationModel | None:
        try:
            return self.catalog.get(model_id)
        except NotFound:
            return None

    def _is_custom_model(self, model_id: str) -> bool:
        try:
            self.registry.get(model_id)
            return True
        except NotFound:
            return False
