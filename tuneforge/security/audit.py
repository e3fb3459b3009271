"""The audit log: one row per mutating API call (who, what, which resource, how it ended, when)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import session_scope
from tuneforge.db.tables import AuditEventRow
from tuneforge.errors import InvalidInput

MAX_LIMIT = 10_000


@dataclass(frozen=True)
class AuditEvent:
    at: datetime
    access_key_id: str | None
    service: str
    operation: str
    resource: str | None
    status_code: int
    error_code: str | None

    def to_json(self) -> dict:
        return {"time": self.at.isoformat(), "accessKeyId": self.access_key_id, "service": self.service,
                "operation": self.operation, "resource": self.resource, "statusCode": self.status_code,
                "errorCode": self.error_code}


class AuditLog:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def record(self, *, access_key_id: str | None, service: str, operation: str, resource: str | None,
               status_code: int, error_code: str | None = None) -> None:
        with session_scope(self.sessions) as session:
            session.add(AuditEventRow(access_key_id=access_key_id, service=service, operation=operation,
                                      resource=resource[:2048] if resource else None, status_code=status_code,
                                      error_code=error_code))

    def recent(self, limit: int = 50) -> list[AuditEvent]:
        """The newest `limit` events, newest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"--limit must be 1-{MAX_LIMIT}, got {limit}", field="--limit")
        with self.sessions() as session:
            rows = session.scalars(select(AuditEventRow).order_by(AuditEventRow.event_id.desc()).limit(limit)).all()
        return [AuditEvent(r.at, r.access_key_id, r.service, r.operation, r.resource, r.status_code, r.error_code) for r in rows]
