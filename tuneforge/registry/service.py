"""The custom model registry: models produced by customization jobs, with Bedrock's Get/List/Delete.

A completed job copies its artifact (a PEFT LoRA adapter, or full weights, in safetensors, with the
tokenizer) into `<home>/custom-models/<modelId>/` and registers it here. Deleting a model removes its files.
A custom model generates through the same engine as its base (the adapter is applied at load).

A job with a `kms_key_id` stores its artifact encrypted under that keyring key (tuneforge.security.crypto,
tuneforge.security.keyring). `plaintext()` then decrypts it into `<home>/run/<modelId>/<random>/` (0700) for a
worker to load (tuneforge.models.specs builds the worker's spec with it); whoever asked for the spec removes that
copy with `release()` once the worker has loaded the model or exited, and `delete()` removes any copies left (a
crashed caller's).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import session_scope
from tuneforge.db.tables import CustomizationJobRow, CustomModelDeploymentRow, CustomModelRow, ProvisionedModelRow
from tuneforge.errors import Conflict, InvalidInput, NotFound
from tuneforge.ids import ArnType, custom_model_arn, parse_arn
from tuneforge.inference.spec import WorkerSpec
from tuneforge.listing import by_creation, page
from tuneforge.registry.states import ModelStatus
from tuneforge.registry.tags import drop_tags, store_tags
from tuneforge.security.crypto import decrypt_dir, encrypt_dir
from tuneforge.security.keyring import get_key
from tuneforge.settings import Settings

MODEL_STATUSES = tuple(ModelStatus)


@dataclass(frozen=True)
class ModelPage:
    models: list[CustomModelRow]
    next_token: str | None


class CustomModelRegistry:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions

    @property
    def root(self) -> Path:
        return self.settings.home / "custom-models"

    @property
    def run_root(self) -> Path:
        """Decrypted copies of encrypted models, one directory per model id."""
        return self.settings.home / "run"

    def register(
        self, job: CustomizationJobRow, *, artifact_dir: Path, artifact_kind: str,
        training_loss: float | None, validation_loss: float | None,
    ) -> CustomModelRow:
        model_id = job.job_id  # one model per job: sharing the id makes the pair easy to follow
        key = get_key(self.settings.home, job.kms_key_id) if job.kms_key_id else None  # NotFound before any file is written
        target = self.root / model_id
        staging = self.root / f".{model_id}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        if key is None:
            shutil.copytree(artifact_dir, staging)
        else:
            encrypt_dir(artifact_dir, staging, key, context=model_id)  # the model id binds the files to this model
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # the artifact appears whole or not at all
        row = CustomModelRow(
            model_id=model_id,
            model_arn=custom_model_arn(self.settings, job.base_model_id, model_id),
            model_name=job.custom_model_name,
            job_id=job.job_id, job_arn=job.job_arn, job_name=job.job_name,
            base_model_id=job.base_model_id, base_model_arn=job.base_model_arn,
            customization_type=job.customization_type, hyperparameters=job.hyperparameters,
            training_data_uri=job.training_data_uri, validation_data_uris=job.validation_data_uris,
            output_uri=job.output_uri, training_loss=training_loss, validation_loss=validation_loss,
            model_status=ModelStatus.ACTIVE.value, artifact_dir=str(target), artifact_kind=artifact_kind, kms_key_id=job.kms_key_id,
        )
        with session_scope(self.sessions) as session:
            session.merge(row)  # a job re-run after a crash at this point registers the same model again
            store_tags(session, row.model_arn, [(t["key"], t["value"]) for t in job.custom_model_tags or []])
        return self.get(model_id)

    def get(self, identifier: str) -> CustomModelRow:
        """By model name, id or ARN."""
        arn = parse_arn(identifier)
        row = None
        if arn is None or arn.type is ArnType.CUSTOM_MODEL:
            named = ((CustomModelRow.model_name == identifier) | (CustomModelRow.model_id == identifier) if arn is None
                     else CustomModelRow.model_id == arn.resource_id)  # any region or account: the id is ours
            with self.sessions() as session:
                row = session.scalars(select(CustomModelRow).where(named)).first()
        if row is None:
            raise NotFound(f"no custom model {identifier!r}: see `tuneforge custom-models list`", field="modelIdentifier")
        return row

    def list(
        self, *, name_contains: str | None = None, base_model_arn: str | None = None, status: str | None = None,
        created_after: datetime | None = None, created_before: datetime | None = None, ascending: bool = False,
        max_results: int | None = None, next_token: str | None = None,
    ) -> ModelPage:
        query = select(CustomModelRow)
        if status:
            if status not in MODEL_STATUSES:
                raise InvalidInput(f"modelStatus must be one of {', '.join(MODEL_STATUSES)}, got {status!r}", field="modelStatus")
            query = query.where(CustomModelRow.model_status == status)
        if name_contains:
            query = query.where(CustomModelRow.model_name.contains(name_contains, autoescape=True))
        if base_model_arn:
            query = query.where(CustomModelRow.base_model_arn == base_model_arn)
        query = by_creation(query, CustomModelRow, CustomModelRow.model_id, created_after=created_after, created_before=created_before,
                            ascending=ascending)
        with self.sessions() as session:
            rows = session.scalars(query).all()
        items, token = page(rows, max_results=max_results, next_token=next_token)
        return ModelPage(items, token)

    def delete(self, identifier: str) -> None:
        row = self.get(identifier)
        if row.model_status == ModelStatus.CREATING:
            raise Conflict(f"custom model {row.model_name!r} is still being created", field="modelIdentifier")
        with self.sessions() as session:
            users = session.scalars(select(ProvisionedModelRow.provisioned_model_name).where(
                (ProvisionedModelRow.model_arn == row.model_arn) | (ProvisionedModelRow.desired_model_arn == row.model_arn)
            )).all()
            on_demand = session.scalars(select(CustomModelDeploymentRow.deployment_name).where(
                CustomModelDeploymentRow.model_arn == row.model_arn)).all()
        if users:
            raise Conflict(f"custom model {row.model_name!r} is served by provisioned model(s) {', '.join(users)}: "
                           "delete them or re-point them first", field="modelIdentifier")
        if on_demand:
            raise Conflict(f"custom model {row.model_name!r} is served by custom model deployment(s) {', '.join(on_demand)}: "
                           "delete them or re-point them first", field="modelIdentifier")
        with session_scope(self.sessions) as session:
            session.delete(session.get(CustomModelRow, row.model_id))
            drop_tags(session, row.model_arn)
        shutil.rmtree(row.artifact_dir, ignore_errors=True)
        shutil.rmtree(self.run_root / row.model_id, ignore_errors=True)  # a worker still running keeps its open files

    def release(self, spec: WorkerSpec) -> None:
        """Remove the decrypted copy a spec of an encrypted model points at (tuneforge.models.specs.custom_spec made it
        with `plaintext()`); a no-op for any other spec."""
        run_root = self.run_root.resolve()
        for path in (spec.adapter, spec.checkpoint):
            if path and Path(path).resolve().is_relative_to(run_root):  # never a base model's checkpoint
                shutil.rmtree(path, ignore_errors=True)

    def plaintext(self, row: CustomModelRow) -> str:
        """The artifact directory a worker loads: the stored one, or a fresh decrypted copy of an encrypted one."""
        if not row.kms_key_id:
            return row.artifact_dir
        key = get_key(self.settings.home, row.kms_key_id)
        return str(decrypt_dir(Path(row.artifact_dir), self.run_root / row.model_id, key, context=row.model_id))

