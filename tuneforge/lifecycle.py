"""Status lifecycles: which status of a resource may follow which, and the one write that moves a row between them.

Each resource declares its lifecycle once, beside its status enum (tuneforge.jobs.states, tuneforge.knowledge.states,
tuneforge.registry.states, tuneforge.serving.deployments), and every status write goes through it:

    JOB = Lifecycle("customization job", {JobStatus.IN_PROGRESS: {JobStatus.STOPPING, ...}, ...}, field="jobIdentifier")
    row.status = JOB.check(row.status, JobStatus.STOPPING, name=row.job_name)       # an ORM object in hand
    JOB.move(session, CustomizationJobRow.status, CustomizationJobRow.job_id == job_id,
             JobStatus.STOPPED, name=job_name, end_time=now)                       # an UPDATE, compare-and-set

An illegal move raises Conflict naming the resource and both statuses. A status absent from the map is final.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from tuneforge.errors import Conflict

S = TypeVar("S", bound=Enum)


class Lifecycle(Generic[S]):
    def __init__(self, resource: str, allowed: Mapping[S, Iterable[S]], *, field: str) -> None:
        self.resource = resource  # named in Conflict messages: "ingestion job 'X' is COMPLETE; ..."
        self.field = field  # the request field a Conflict is about
        self.allowed = {current.value: frozenset(t.value for t in targets) for current, targets in allowed.items()}

    def can(self, current: str, target: S) -> bool:
        return target.value in self.allowed.get(_value(current), frozenset())

    def sources(self, target: S) -> list[str]:
        """The statuses that may become `target`."""
        return sorted(current for current, targets in self.allowed.items() if target.value in targets)

    def check(self, current: str, target: S, *, name: str) -> str:
        """`target`'s value, or Conflict when `current` may not become it."""
        if not self.can(current, target):
            raise Conflict(f"{self.resource} {name!r} is {_value(current)}; it cannot become {target.value}", field=self.field)
        return target.value

    def move(self, session: Session, column: InstrumentedAttribute, where: ColumnElement[bool], target: S, *, name: str,
             **values: Any) -> bool:
        """UPDATE the row `where` selects to `target` (with `values`), only from a status that may become it, in one
        statement, so two processes racing cannot both move it. True when written; Conflict when the row's status
        may not become `target`; False when no row matches `where` (gone, or another of its conditions changed)."""
        statement = update(column.class_).where(where, column.in_(self.sources(target)))
        if session.execute(statement.values({column.key: target.value, **values})).rowcount:
            return True
        current = session.scalar(select(column).where(where))
        if current is not None:
            self.check(current, target, name=name)
        return False


def _value(status: Any) -> Any:
    return status.value if isinstance(status, Enum) else status
