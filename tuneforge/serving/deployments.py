"""Provisioned throughput ("deployments"): Bedrock's Create/Get/List/Update/DeleteProvisionedModelThroughput.

This module keeps the records; `tuneforge.serving.supervisor` (inside `tuneforge serve`) makes them true: it
starts one worker process per model unit, runs a health generation, and only then sets the status InService.
So the CLI and the HTTP API both just write here, and a server picks the change up within a second.

Rules (bedrock-api.md §2, §2a):
- modelId: a foundation model (id, alias or ARN) or an Active custom model (name, id or ARN), as
  tuneforge.models.resolve reads it.
- Update re-points to the same foundation model or to another custom model of the same base (Bedrock's rule);
  changing the number of units is ours (the CLI's `--units`; Bedrock's API cannot). A provisioned model that is
  Creating or Updating cannot be updated again until it settles; a Failed one can only be deleted.
- Commitments (OneMonth, SixMonths) are recorded with their expiration time, as Bedrock reports them. There is
  no billing here, so they do not block deletion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.catalog.service import Catalog
from tuneforge.db import session_scope, utcnow
from tuneforge.db.tables import ProvisionedModelRow, ResourceTagRow
from tuneforge.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from tuneforge.ids import new_id, provisioned_model_arn
from tuneforge.lifecycle import Lifecycle
from tuneforge.listing import by_creation, page
from tuneforge.models.resolve import LOADABLE, ModelResolver
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.settings import Settings

NAME = re.compile(r"^([0-9a-zA-Z][_-]?)+$")  # Bedrock's provisionedModelName pattern
COMMITMENTS = {"OneMonth": timedelta(days=30), "SixMonths": timedelta(days=182)}


class DeploymentStatus(str, Enum):
    CREATING = "Creating"
    IN_SERVICE = "InService"
    UPDATING = "Updating"
    FAILED = "Failed"


SETTLING = (DeploymentStatus.CREATING.value, DeploymentStatus.UPDATING.value)
DEPLOYMENT = Lifecycle("provisioned model", {
    DeploymentStatus.CREATING: {DeploymentStatus.IN_SERVICE, DeploymentStatus.FAILED},
    # a failed update keeps serving what it served: back to InService, never Failed
    DeploymentStatus.UPDATING: {DeploymentStatus.IN_SERVICE},
    # InService -> InService: the supervisor reloaded its workers (a server restart) and reports them healthy again
    DeploymentStatus.IN_SERVICE: {DeploymentStatus.UPDATING, DeploymentStatus.IN_SERVICE},
}, field="provisionedModelId")


@dataclass(frozen=True)
class DeploymentPage:
    deployments: list[ProvisionedModelRow]
    next_token: str | None


class DeploymentService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], catalog: Catalog, registry: CustomModelRegistry) -> None:
        self.settings = settings
        self.sessions = sessions
        self.models = ModelResolver(settings, sessions, catalog, registry)  # what a modelId names, and its records' lookup

    # ---- create ---------------------------------------------------------------------------------
    def create(
        self, *, name: str, model_id: str, units: int, commitment: str | None = None,
        client_request_token: str | None = None, tags: tuple[tuple[str, str], ...] = (),
    ) -> ProvisionedModelRow:
        if client_request_token:
            with self.sessions() as session:
                existing = session.scalars(
                    select(ProvisionedModelRow).where(ProvisionedModelRow.client_request_token == client_request_token)
                ).first()
            if existing is not None:  # a retry of a request we already took
                return existing
        self._check_name(name, "provisionedModelName")
        self._check_units(units)
        if commitment is not None and commitment not in COMMITMENTS:
            raise InvalidInput(f"commitmentDuration must be one of {', '.join(COMMITMENTS)}, got {commitment!r}", field="commitmentDuration")
        served = self.models.resolve(model_id, kinds=LOADABLE)
        deployment_id = new_id()
        row = ProvisionedModelRow(
            provisioned_model_id=deployment_id,
            provisioned_model_arn=provisioned_model_arn(self.settings, deployment_id),
            provisioned_model_name=name, client_request_token=client_request_token,
            model_arn=served.arn, desired_model_arn=served.arn, foundation_model_arn=served.base.arn(self.settings.region),
            model_units=units, desired_model_units=units, commitment_duration=commitment,
            commitment_expiration_time=utcnow() + COMMITMENTS[commitment] if commitment else None,
            status=DeploymentStatus.CREATING.value,
        )
        try:
            with session_scope(self.sessions) as session:
                session.add(row)
                session.flush()
                for key, value in tags:
                    session.add(ResourceTagRow(resource_arn=row.provisioned_model_arn, key=key, value=value))
        except IntegrityError:
            raise Conflict(f"a provisioned model named {name!r} already exists", field="provisionedModelName") from None
        return self.get(deployment_id)

    # ---- read -----------------------------------------------------------------------------------
    def get(self, identifier: str) -> ProvisionedModelRow:
        """By id, ARN or name."""
        row = self.models.provisioned(identifier)
        if row is None:
            raise NotFound(f"no provisioned model {identifier!r}: see `tuneforge deployments list`", field="provisionedModelId")
        return row

    def find(self, identifier: str) -> ProvisionedModelRow | None:
        return self.models.provisioned(identifier)

    def list(
        self, *, status: str | None = None, name_contains: str | None = None, model_arn: str | None = None,
        created_after: datetime | None = None, created_before: datetime | None = None, ascending: bool = False,
        max_results: int | None = None, next_token: str | None = None,
    ) -> DeploymentPage:
        query = select(ProvisionedModelRow)
        if status:
            if status not in {s.value for s in DeploymentStatus}:
                raise InvalidInput(f"statusEquals must be one of {', '.join(s.value for s in DeploymentStatus)}, got {status!r}", field="statusEquals")
            query = query.where(ProvisionedModelRow.status == status)
        if name_contains:
            query = query.where(ProvisionedModelRow.provisioned_model_name.contains(name_contains, autoescape=True))
        if model_arn:
            query = query.where(ProvisionedModelRow.model_arn == model_arn)
        query = by_creation(query, ProvisionedModelRow, ProvisionedModelRow.provisioned_model_id, created_after=created_after, created_before=created_before,
                            ascending=ascending)
        with self.sessions() as session:
            rows = session.scalars(query).all()
        items, token = page(rows, max_results=max_results, next_token=next_token)
        return DeploymentPage(items, token)

    def all(self) -> list[ProvisionedModelRow]:
        with self.sessions() as session:
            return list(session.scalars(select(ProvisionedModelRow)).all())

    # ---- update / delete ------------------------------------------------------------------------
    def update(self, identifier: str, *, name: str | None = None, model_id: str | None = None, units: int | None = None) -> ProvisionedModelRow:
        row = self.get(identifier)
        if name is not None:
            self._check_name(name, "desiredProvisionedModelName")
        target = None
        if model_id is not None:
            target = self.models.resolve(model_id, kinds=LOADABLE, field="desiredModelId")
            # an alias serves its target: bases are compared by the target
            base_arn = target.base.arn(self.settings.region)
            if base_arn != row.foundation_model_arn:
                raise InvalidInput(
                    f"{model_id!r} is built on {base_arn}, but this provisioned model serves "
                    f"{row.foundation_model_arn}: re-point only to that base model or to a custom model of it",
                    field="desiredModelId",
                )
        if units is not None:
            self._check_units(units)
        changes_serving = (target is not None and target.arn != row.desired_model_arn) or (units is not None and units != row.desired_model_units)
        if changes_serving and row.status in SETTLING:
            raise Conflict(f"provisioned model {row.provisioned_model_name!r} is {row.status}: wait until it is InService", field="provisionedModelId")
        if changes_serving and row.status == DeploymentStatus.FAILED.value:
            raise Conflict(f"provisioned model {row.provisioned_model_name!r} failed ({row.failure_message}): delete it and create it again", field="provisionedModelId")
        try:
            with session_scope(self.sessions) as session:
                current = session.get(ProvisionedModelRow, row.provisioned_model_id)
                if current is None:
                    raise NotFound(f"provisioned model {identifier!r} was deleted", field="provisionedModelId")
                if name is not None:
                    current.provisioned_model_name = name
                if changes_serving:
                    current.desired_model_arn = target.arn if target else current.desired_model_arn
                    current.desired_model_units = units if units is not None else current.desired_model_units
                    current.status = DEPLOYMENT.check(current.status, DeploymentStatus.UPDATING, name=current.provisioned_model_name)
                    current.failure_message = None
                current.updated_at = utcnow()
        except IntegrityError:
            raise Conflict(f"a provisioned model named {name!r} already exists", field="desiredProvisionedModelName") from None
        return self.get(row.provisioned_model_id)

    def delete(self, identifier: str) -> None:
        row = self.get(identifier)
        with session_scope(self.sessions) as session:
            session.execute(delete(ProvisionedModelRow).where(ProvisionedModelRow.provisioned_model_id == row.provisioned_model_id))
            session.execute(delete(ResourceTagRow).where(ResourceTagRow.resource_arn == row.provisioned_model_arn))

    # ---- the supervisor reports here ----------------------------------------------------------------
    def settled(self, deployment_id: str, *, model_arn: str, units: int) -> None:
        """The workers for (model_arn, units) passed their health generation: InService."""
        with session_scope(self.sessions) as session:
            row = session.get(ProvisionedModelRow, deployment_id)
            if row is None:
                return
            row.status = DEPLOYMENT.check(row.status, DeploymentStatus.IN_SERVICE, name=row.provisioned_model_name)
            row.model_arn, row.model_units, row.failure_message = model_arn, units, None
            row.updated_at = utcnow()

    def failed(self, deployment_id: str, message: str) -> None:
        """Creating failed: the provisioned model is Failed. Updating failed: it keeps serving what it served."""
        with session_scope(self.sessions) as session:
            row = session.get(ProvisionedModelRow, deployment_id)
            if row is None:
                return
            if row.status == DeploymentStatus.CREATING.value:
                row.status = DEPLOYMENT.check(row.status, DeploymentStatus.FAILED, name=row.provisioned_model_name)
                row.failure_message = message[:4096]
            else:
                row.status = DEPLOYMENT.check(row.status, DeploymentStatus.IN_SERVICE, name=row.provisioned_model_name)
                row.desired_model_arn, row.desired_model_units = row.model_arn, row.model_units
                row.failure_message = f"update failed, still serving the previous model: {message}"[:4096]
            row.updated_at = utcnow()

    # ---- checks -----------------------------------------------------------------------------------
    def _check_name(self, name: str, field: str) -> None:
        if not isinstance(name, str) or not 1 <= len(name) <= 63 or not NAME.match(name):
            raise InvalidInput(f"{field} must be 1-63 letters, digits, '-' or '_' starting with a letter or digit, got {name!r}", field=field)

    def _check_units(self, units: int) -> None:
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise InvalidInput(f"modelUnits must be an integer >= 1, got {units!r}", field="modelUnits")
        if units > self.settings.max_model_units:
            raise QuotaExceeded(
                f"modelUnits {units} is over this server's limit of {self.settings.max_model_units} "
                "(set TUNEFORGE_MAX_MODEL_UNITS to raise it; each unit is one worker process with its own copy of the model)",
                field="modelUnits",
            )
