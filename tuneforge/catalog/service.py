"""The foundation-model catalog: built-in models, user-registered models and Bedrock-id aliases.

Bedrock's ListFoundationModels / GetFoundationModel semantics: filter by provider (case-insensitive),
customization type, inference type and output modality; get by model id or foundation-model ARN.
Registered models and aliases live in the metadata store; built-in ones live in code (catalog.builtin).
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.catalog.builtin import BUILTIN_MODELS
from tuneforge.catalog.entries import (
    BodyFormat,
    Customization,
    FoundationModel,
    InferenceType,
    Modality,
    ModelSource,
    SourceKind,
)
from tuneforge.db import session_scope
from tuneforge.db.tables import FoundationModelRow, ModelAliasRow
from tuneforge.errors import Conflict, InvalidInput, NotFound, Unavailable
from tuneforge.ids import ArnType, parse_arn
from tuneforge.inference.checkpoint import check_checkpoint_dir, check_cross_encoder_dir, context_length
from tuneforge.settings import Settings

MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,139}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_PROVIDERS = {"meta": "Meta", "amazon": "Amazon", "anthropic": "Anthropic", "mistral": "Mistral AI", "cohere": "Cohere"}


def model_id_from(identifier: str) -> str:
    """Accept a model id or a foundation-model ARN."""
    arn = parse_arn(identifier)
    return arn.path if arn is not None and arn.type is ArnType.FOUNDATION_MODEL else identifier.strip()


def body_format_for_bedrock_id(model_id: str) -> BodyFormat | None:
    if model_id.startswith("meta.llama"):
        return BodyFormat.LLAMA2
    if model_id.startswith("amazon.titan-text"):
        return BodyFormat.TITAN
    return None


class Catalog:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions

    # ---- reading --------------------------------------------------------------------------------
    def list(
        self,
        *,
        provider: str | None = None,
        customization: Customization | None = None,
        inference_type: InferenceType | None = None,
        output_modality: Modality | None = None,
    ) -> list[FoundationModel]:
        models = self._all()
        if provider:
            models = [m for m in models if m.provider_name.lower() == provider.lower()]
        if customization:
            models = [m for m in models if customization in m.customizations_supported]
        if inference_type:
            models = [m for m in models if inference_type in m.inference_types_supported]
        if output_modality:
            models = [m for m in models if output_modality in m.output_modalities]
        return models

    def get(self, identifier: str) -> FoundationModel:
        model_id = model_id_from(identifier)
        for model in self._all():
            if model.model_id == model_id:
                return model
        raise NotFound(
            f"no foundation model {model_id!r} in the catalog: see `tuneforge models list`, "
            "or register one with `tuneforge models add ID PATH_OR_HUB_ID`"
        )

    def resolve(self, identifier: str) -> FoundationModel:
        """The entry that holds the weights: an alias is followed to its target."""
        model = self.get(identifier)
        return self.get(model.alias_of) if model.alias_of else model

    def _all(self) -> list[FoundationModel]:
        with self.sessions() as session:
            rows = session.scalars(select(FoundationModelRow).order_by(FoundationModelRow.model_id)).all()
            aliases = session.scalars(select(ModelAliasRow).order_by(ModelAliasRow.alias_id)).all()
        models = list(BUILTIN_MODELS) + [_from_row(r) for r in rows]
        by_id = {m.model_id: m for m in models}
        for alias in aliases:
            target = by_id.get(alias.target_model_id)
            if target is None:  # the target was removed; the alias stays visible in the DB but not listed
                continue
            provider = _PROVIDERS.get(alias.alias_id.split(".", 1)[0], target.provider_name)
            models.append(target.as_alias(alias.alias_id, provider, BodyFormat(alias.body_format or target.body_format)))
        return models

    # ---- writing --------------------------------------------------------------------------------
    def add(
        self,
        model_id: str,
        source: str,
        *,
        name: str | None = None,
        provider: str | None = None,
        embedding: bool = False,
        reranker: bool = False,
        body_format: BodyFormat = BodyFormat.LLAMA2,
    ) -> FoundationModel:
        """Register a local checkpoint directory or a Hugging Face hub id (downloaded into the data dir): a text
        generator, a sentence-transformers embedding model (`embedding`) or a cross-encoder reranker (`reranker`)."""
        if embedding and reranker:
            raise InvalidInput("a model is an embedding model or a reranker, not both: pass one of the two", field="reranker")
        self._check_new_id(model_id)
        path = Path(source).expanduser()
        if path.exists() or source.startswith(("/", ".", "~")) or not _HUB_ID.match(source):
            checkpoint = path.resolve()
            kind, hub_id = SourceKind.LOCAL, None
        else:
            checkpoint, kind, hub_id = self._download(model_id, source), SourceKind.HUB, source
        if embedding:
            if not (checkpoint / "modules.json").is_file() and not (checkpoint / "config.json").is_file():
                raise InvalidInput(f"{str(checkpoint)!r} is not a sentence-transformers directory (no modules.json)", field="source")
            config = {}
        elif reranker:
            config = check_cross_encoder_dir(checkpoint)
        else:
            config = check_checkpoint_dir(checkpoint)
        generates = not (embedding or reranker)
        output = Modality.EMBEDDING if embedding else Modality.RERANK if reranker else Modality.TEXT
        row = FoundationModelRow(
            model_id=model_id,
            model_name=name or model_id,
            provider_name=provider or (hub_id.split("/")[0] if hub_id else "Local"),
            source_kind=kind.value,
            source=hub_id or str(checkpoint),
            checkpoint_path=str(checkpoint),
            input_modalities=[Modality.TEXT.value],
            output_modalities=[output.value],
            customizations_supported=[Customization.FINE_TUNING.value, Customization.CONTINUED_PRE_TRAINING.value] if generates else [],
            inference_types_supported=[InferenceType.ON_DEMAND.value] + ([InferenceType.PROVISIONED.value] if generates else []),
            response_streaming_supported=generates,
            body_format=body_format.value if generates else None,
            context_length=context_length(config),
        )
        with session_scope(self.sessions) as session:
            session.add(row)
        return _from_row(row)

    def alias(self, alias_id: str, target: str, *, body_format: BodyFormat | None = None) -> FoundationModel:
        """Map a Bedrock model id (e.g. meta.llama2-13b-chat-v1) onto a catalog model."""
        self._check_new_id(alias_id)
        target_model = self.resolve(target)
        fmt = body_format or body_format_for_bedrock_id(alias_id) or target_model.body_format
        with session_scope(self.sessions) as session:
            session.add(ModelAliasRow(alias_id=alias_id, target_model_id=target_model.model_id, body_format=fmt.value))
        return self.get(alias_id)

    def remove(self, identifier: str) -> None:
        model = self.get(identifier)
        if model.builtin:
            raise Conflict(f"{model.model_id!r} is built in and cannot be removed", field="model_id")
        with session_scope(self.sessions) as session:
            row_type = ModelAliasRow if model.alias_of else FoundationModelRow
            session.delete(session.get(row_type, model.model_id))

    def _check_new_id(self, model_id: str) -> None:
        if not MODEL_ID_PATTERN.match(model_id):
            raise InvalidInput(
                f"model id {model_id!r} is invalid: use 1-140 letters, digits, '.', '_', ':' or '-', starting with a letter or digit",
                field="model_id",
            )
        if any(m.model_id == model_id for m in self._all()):
            raise Conflict(f"model id {model_id!r} is already in the catalog: pick another id or remove it first", field="model_id")

    def _download(self, model_id: str, hub_id: str) -> Path:
        if self.settings.offline:
            raise Unavailable(
                f"{hub_id!r} is a Hugging Face hub id, but HF_HUB_OFFLINE is set: download it on a connected machine "
                "(huggingface-cli download) and pass the local directory instead",
                field="source",
            )
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

        target = self.settings.models_dir / model_id
        try:
            snapshot_download(hub_id, local_dir=target)
        except RepositoryNotFoundError:
            raise NotFound(f"the Hugging Face hub has no model {hub_id!r}: check the id", field="source") from None
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise Unavailable(
                f"could not download {hub_id!r} from the Hugging Face hub ({type(exc).__name__}: {exc}): check the "
                "network, or download it elsewhere and pass the local directory",
                field="source",
            ) from None
        return target


def _customizations(stored: list[str]) -> tuple[Customization, ...]:
    """What a registered model supports: a model that can be fine-tuned can be preference-tuned (the same LoRA on
    the same causal LM), derived here rather than stored, so models registered before preference tuning existed get it."""
    supported = [Customization(c) for c in stored]
    if Customization.FINE_TUNING in supported and Customization.PREFERENCE_TUNING not in supported:
        supported.append(Customization.PREFERENCE_TUNING)
    return tuple(supported)


def _from_row(row: FoundationModelRow) -> FoundationModel:
    kind = SourceKind(row.source_kind)
    return FoundationModel(
        model_id=row.model_id,
        model_name=row.model_name,
        provider_name=row.provider_name,
        source=ModelSource(kind, row.checkpoint_path, hub_id=row.source if kind is SourceKind.HUB else None),
        input_modalities=tuple(Modality(m) for m in row.input_modalities),
        output_modalities=tuple(Modality(m) for m in row.output_modalities),
        customizations_supported=_customizations(row.customizations_supported),
        inference_types_supported=tuple(InferenceType(t) for t in row.inference_types_supported),
        response_streaming_supported=row.response_streaming_supported,
        lifecycle_status=row.lifecycle_status,
        body_format=BodyFormat(row.body_format or BodyFormat.LLAMA2.value),
        context_length=row.context_length,
    )
