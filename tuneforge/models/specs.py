"""How a worker loads a model: the one place a WorkerSpec is built, in the parent process (no torch).

    spec = foundation_spec(catalog, catalog.get("tiny"))        # a catalog model (an alias loads its target)
    spec = custom_spec(catalog, registry, row, device="cpu")    # a custom model: its base plus the adapter, or full weights
    registry.release(spec)                                      # an encrypted custom model's decrypted copy, once loaded
    spec = embedding_spec(catalog, "sentence-transformers.all-minilm-l6-v2")   # the `embed` op
    spec = reranker_spec(catalog, "my.reranker", field="...modelArn")           # the `rerank` op

Callers that start from an identifier use tuneforge.models.resolve.ModelResolver.worker_spec, which calls these.
"""

from __future__ import annotations

from pathlib import Path

from tuneforge.catalog.builtin import package_path
from tuneforge.catalog.entries import FoundationModel, Modality, SourceKind
from tuneforge.catalog.service import Catalog, model_id_from
from tuneforge.db.tables import CustomModelRow
from tuneforge.errors import InvalidInput, NotFound
from tuneforge.inference.checkpoint import check_checkpoint_dir
from tuneforge.inference.spec import WorkerSpec
from tuneforge.registry.service import CustomModelRegistry


def foundation_spec(catalog: Catalog, model: FoundationModel, *, device: str = "auto", dtype: str = "auto") -> WorkerSpec:
    """Where a worker finds a catalog model's weights (a GGUF model is materialized on first load)."""
    model = catalog.resolve(model.model_id)
    if Modality.TEXT not in model.output_modalities:
        kind = "a reranker" if Modality.RERANK in model.output_modalities else "an embedding model"
        raise InvalidInput(f"{model.model_id!r} is {kind} and cannot generate text", field="model_id")
    if model.source.kind is SourceKind.GGUF_PACKAGE:
        gguf = package_path(model.source.location)
        return WorkerSpec(model.model_id, str(catalog.settings.models_dir / model.model_id), str(gguf), device, dtype)
    if model.source.kind is SourceKind.PACKAGE_DIR:
        return WorkerSpec(model.model_id, str(package_path(model.source.location)), None, device, dtype)
    check_checkpoint_dir(Path(model.source.location))
    return WorkerSpec(model.model_id, model.source.location, None, device, dtype)


def custom_spec(catalog: Catalog, registry: CustomModelRegistry, row: CustomModelRow, *, device: str = "auto",
                dtype: str = "auto") -> WorkerSpec:
    """Load the base model and apply the adapter, or load the full weights.

    For an encrypted model the spec points at a fresh plaintext copy: pass the spec to `registry.release()` when done.
    """
    if row.artifact_kind == "full":
        return WorkerSpec(row.model_name, registry.plaintext(row), None, device, dtype)
    base = foundation_spec(catalog, catalog.get(row.base_model_id), device=device, dtype=dtype)
    return WorkerSpec(row.model_name, base.checkpoint, base.gguf, device, dtype, adapter=registry.plaintext(row))


def embedding_spec(catalog: Catalog, identifier: str, *, device: str = "auto") -> WorkerSpec:
    """A worker spec that serves `identifier` (an EMBEDDING catalog model id or ARN) with the `embed` op."""
    model = catalog.resolve(model_id_from(identifier))
    if Modality.EMBEDDING not in model.output_modalities:
        raise InvalidInput(
            f"{model.model_id!r} is not an embedding model: pick a catalog model whose output modality is EMBEDDING "
            "(e.g. sentence-transformers.all-minilm-l6-v2)", field="embeddingModelArn",
        )
    if model.source.kind is SourceKind.PACKAGE_DIR:
        return WorkerSpec(model.model_id, str(package_path(model.source.location)), device=device, task="embed")
    return WorkerSpec(model.model_id, model.source.location, device=device, task="embed")


def reranker_spec(catalog: Catalog, identifier: str, *, field: str, device: str = "auto") -> WorkerSpec:
    """A worker spec that serves `identifier` (a RERANK catalog model id or foundation-model ARN) with the `rerank`
    op; a model that is not a reranker is an InvalidInput naming `field`, the caller's name for the identifier."""
    try:
        model = catalog.resolve(model_id_from(identifier))
    except NotFound as exc:
        raise NotFound(f"{field}: {exc.message}", field=field) from None
    if Modality.RERANK not in model.output_modalities:
        kind = "an embedding model" if Modality.EMBEDDING in model.output_modalities else "a text model"
        raise InvalidInput(
            f"{field} names {model.model_id!r}, {kind}, not a reranker: register a cross-encoder with "
            "`tuneforge models add ID PATH --reranker` and name it here", field=field,
        )
    if model.source.kind is SourceKind.PACKAGE_DIR:
        return WorkerSpec(model.model_id, str(package_path(model.source.location)), device=device, task="rerank")
    return WorkerSpec(model.model_id, model.source.location, device=device, task="rerank")
