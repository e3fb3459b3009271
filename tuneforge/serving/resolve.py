"""Which worker serves a model id: shared by every protocol that generates text (Bedrock runtime, OpenAI).

A foundation model (id, ARN or alias) is served on demand by the worker pool. Custom models are served
through a provisioned throughput, as in Bedrock, so naming one directly is refused with the way to do it.
"""

from __future__ import annotations

from tuneforge.catalog.entries import FoundationModel
from tuneforge.catalog.service import Catalog
from tuneforge.errors import InvalidInput, NotFound
from tuneforge.inference.client import WorkerProcess
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.serving.pool import WorkerPool


def worker_for(catalog: Catalog, registry: CustomModelRegistry, pool: WorkerPool, model_id: str, *,
               field: str = "modelId") -> tuple[WorkerProcess, FoundationModel]:
    """The worker serving `model_id` (loaded on first use) and its catalog entry (whose body format callers use)."""
    if ":custom-model/" in model_id or _is_custom_model_name(registry, model_id):
        raise InvalidInput(
            f"{model_id!r} is a custom model: invoke it through a provisioned throughput "
            "(CreateProvisionedModelThroughput, then use its provisionedModelArn as the model id)", field=field,
        )
    try:
        entry = catalog.get(model_id)
    except NotFound:
        raise NotFound(f"no model {model_id!r} to invoke: see `tuneforge models list` (ListFoundationModels), "
                       "or register it with `tuneforge models add`", field=field) from None
    resolved = catalog.resolve(entry.model_id)
    return pool.get(f"foundation:{resolved.model_id}", lambda: catalog.worker_spec(resolved)), entry


def _is_custom_model_name(registry: CustomModelRegistry, model_id: str) -> bool:
    try:
        registry.get(model_id)
        return True
    except NotFound:
        return False
