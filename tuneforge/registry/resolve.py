"""One model identifier -> what a worker loads: a catalog model (id, alias or foundation-model ARN) or a custom
model (name, id or ARN; its base with the adapter, or its full weights).

    model = resolve_model("dialogsum-summarizer", catalog, registry)
    ...  # start a worker or an evaluation process with model.spec
    registry.release(model.spec)                             # an encrypted model's decrypted copy, once loaded
"""

from __future__ import annotations

from dataclasses import dataclass

from tuneforge.catalog.entries import FoundationModel
from tuneforge.catalog.service import Catalog
from tuneforge.errors import NotFound
from tuneforge.inference.spec import WorkerSpec
from tuneforge.registry.service import CustomModelRegistry


@dataclass(frozen=True)
class ResolvedModel:
    identifier: str  # as the user wrote it
    spec: WorkerSpec
    base: FoundationModel  # the catalog entry itself, or the custom model's base (aliases resolved)
    custom: bool
    entry: FoundationModel  # the catalog entry as named (an alias keeps its body format), or the custom model's base


def resolve_model(identifier: str, catalog: Catalog, registry: CustomModelRegistry, *, device: str = "auto",
                  dtype: str = "auto", field: str = "--model") -> ResolvedModel:
    """Catalog first, then custom models; NotFound naming both lists otherwise."""
    try:
        entry = catalog.get(identifier)
    except NotFound:
        pass
    else:
        return ResolvedModel(identifier, catalog.worker_spec(entry, device=device, dtype=dtype), catalog.resolve(entry.model_id), False, entry)
    try:
        row = registry.get(identifier)
    except NotFound:
        raise NotFound(f"no model {identifier!r}: see `tuneforge models list` and `tuneforge custom-models list`", field=field) from None
    spec = registry.worker_spec(row, catalog, device=device, dtype=dtype)
    return ResolvedModel(identifier, spec, catalog.resolve(row.base_model_id), True, catalog.get(row.base_model_id))


def base_spec(identifier: str, catalog: Catalog, registry: CustomModelRegistry, *, field: str = "--model") -> WorkerSpec:
    """The base model's spec for a catalog or custom model: what a tokenizer is read from (custom models keep
    their base's tokenizer). Never decrypts anything."""
    try:
        entry = catalog.get(identifier)
    except NotFound:
        try:
            entry = catalog.get(registry.get(identifier).base_model_id)
        except NotFound:
            raise NotFound(f"no model {identifier!r}: see `tuneforge models list` and `tuneforge custom-models list`", field=field) from None
    return catalog.worker_spec(entry)
