"""On-demand custom model deployments: Bedrock's Create/Get/List/Update/DeleteCustomModelDeployment.

A deployment names an Active custom model and makes it invokable on demand by the deployment's ARN, with no
dedicated units (provisioned throughput, tuneforge.serving.deployments, keeps that meaning). The server's worker
pool loads the model on the first request and unloads it when idle, as it does foundation models; so a deployment
is Active as soon as it is created. Update re-points it to another Active custom model of the same base.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import session_scope
from tuneforge.db.tables import CustomModelDeploymentRow, ResourceTagRow
from tuneforge.errors import Conflict, InvalidInput, NotFound
from tuneforge.ids import ArnType, custom_model_deployment_arn, new_id, parse_arn
from tuneforge.listing import by_creation, page
from tuneforge.models.resolve import CustomRef, Kind, ModelResolver
from tuneforge.settings import Settings

NAME = re.compile(r"^([0-9a-zA-Z][_-]?){1,63}$")  # Bedrock's modelDeploymentName pattern
FIELD = "customModelDeploymentIdentifier"


class CustomDeploymentStatus(StrEnum):
    CREATING = "Creating"
    ACTIVE = "Active"
    FAILED = "Failed"


class UpdateStatus(StrEnum):
    UPDATING = "Updating"
    COMPLETED = "UpdateCompleted"
    FAILED = "UpdateFailed"


@dataclass(frozen=True)
class CustomDeploymentPage:
    deployments: list[CustomModelDeploymentRow]
    next_token: str | None


class CustomModelDeployments:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], models: ModelResolver) -> None:
        self.settings = settings
        self.sessions = sessions
        self.models = models

    def create(self, *, name: str, model_arn: str, description: str | None = None, client_request_token: str | None = None,
               tags: tuple[tuple[str, str], ...] = ()) -> CustomModelDeploymentRow:
        if client_request_token:
            with self.sessions() as session:
                existing = session.scalars(select(CustomModelDeploymentRow)
                                           .where(CustomModelDeploymentRow.client_request_token == client_request_token)).first()
            if existing is not None:  # a retry of a request we already took
                return existing
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidInput(f"modelDeploymentName must be 1-63 letters, digits, '-' or '_' starting with a letter or digit, "
                               f"got {name!r}", field="modelDeploymentName")
        model = self._custom_model(model_arn, "modelArn")
        deployment_id = new_id()
        row = CustomModelDeploymentRow(
            deployment_id=deployment_id, deployment_arn=custom_model_deployment_arn(self.settings, deployment_id),
            deployment_name=name, client_request_token=client_request_token, model_arn=model.arn, description=description,
            status=CustomDeploymentStatus.ACTIVE.value,  # on demand: nothing to start before it can be invoked
        )
        try:
            with session_scope(self.sessions) as session:
                session.add(row)
                session.flush()
                for key, value in tags:
                    session.add(ResourceTagRow(resource_arn=row.deployment_arn, key=key, value=value))
        except IntegrityError:
            raise Conflict(f"a custom model deployment named {name!r} already exists", field="modelDeploymentName") from None
        return self.get(deployment_id)

    def get(self, identifier: str) -> CustomModelDeploymentRow:
        """By ARN, id or name."""
        row = self.find(identifier)
        if row is None:
            raise NotFound(f"no custom model deployment {identifier!r}: see ListCustomModelDeployments", field=FIELD)
        return row

    def find(self, identifier: str) -> CustomModelDeploymentRow | None:
        arn = parse_arn(identifier)
        if arn is None:
            named = (CustomModelDeploymentRow.deployment_name == identifier) | (CustomModelDeploymentRow.deployment_id == identifier)
        elif arn.type is ArnType.CUSTOM_MODEL_DEPLOYMENT:
            named = CustomModelDeploymentRow.deployment_id == arn.resource_id
        else:
            return None
        with self.sessions() as session:
            return session.scalars(select(CustomModelDeploymentRow).where(named)).first()

    def list(self, *, status: str | None = None, name_contains: str | None = None, model_arn: str | None = None,
             created_after: datetime | None = None, created_before: datetime | None = None, ascending: bool = False,
             max_results: int | None = None, next_token: str | None = None) -> CustomDeploymentPage:
        query = select(CustomModelDeploymentRow)
        if status:
            if status not in set(CustomDeploymentStatus):
                raise InvalidInput(f"statusEquals must be one of {', '.join(CustomDeploymentStatus)}, got {status!r}", field="statusEquals")
            query = query.where(CustomModelDeploymentRow.status == status)
        if name_contains:
            query = query.where(CustomModelDeploymentRow.deployment_name.contains(name_contains, autoescape=True))
        if model_arn:
            query = query.where(CustomModelDeploymentRow.model_arn == model_arn)
        query = by_creation(query, CustomModelDeploymentRow, CustomModelDeploymentRow.deployment_id, created_after=created_after,
                            created_before=created_before, ascending=ascending)
        with self.sessions() as session:
            rows = session.scalars(query).all()
        items, token = page(rows, max_results=max_results, next_token=next_token)
        return CustomDeploymentPage(items, token)

    def update(self, identifier: str, *, model_arn: str) -> CustomModelDeploymentRow:
        row = self.get(identifier)
        target = self._custom_model(model_arn, "modelArn")
        current = self._custom_model(row.model_arn, "modelArn")
        if target.base.model_id != current.base.model_id:
            raise InvalidInput(f"{model_arn!r} is built on {target.base.model_id}, but this deployment serves a custom model of "
                               f"{current.base.model_id}: re-point only to a custom model of that base", field="modelArn")
        with session_scope(self.sessions) as session:
            found = session.get(CustomModelDeploymentRow, row.deployment_id)
            if found is None:
                raise NotFound(f"custom model deployment {identifier!r} was deleted", field=FIELD)
            # on demand, the next request loads the new model: the update is complete as soon as it is written
            found.model_arn, found.update_model_arn, found.update_status = target.arn, target.arn, UpdateStatus.COMPLETED.value
        return self.get(row.deployment_id)

    def delete(self, identifier: str) -> None:
        row = self.get(identifier)
        with session_scope(self.sessions) as session:
            session.execute(delete(CustomModelDeploymentRow).where(CustomModelDeploymentRow.deployment_id == row.deployment_id))
            session.execute(delete(ResourceTagRow).where(ResourceTagRow.resource_arn == row.deployment_arn))

    def using(self, model_arn: str) -> list[str]:
        """Names of the deployments that serve `model_arn` (a custom model in use cannot be deleted)."""
        with self.sessions() as session:
            return list(session.scalars(select(CustomModelDeploymentRow.deployment_name)
                                        .where(CustomModelDeploymentRow.model_arn == model_arn)).all())

    def _custom_model(self, identifier: str, field: str) -> CustomRef:
        found = self.models.resolve(identifier, kinds=(Kind.CUSTOM,), field=field)
        assert isinstance(found, CustomRef)
        return found
