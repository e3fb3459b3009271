"""Which OpenAI batch is which model invocation job: the batch's id, endpoint and files, in one row per batch.

The batch job itself is the model invocation job (tuneforge.batch.service); this only keeps what OpenAI's API names
that Bedrock's does not: the uploaded input file, the requests refused before the job started, the result files.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import session_scope
from tuneforge.db.tables import OpenAIBatchRow
from tuneforge.errors import NotFound


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


class BatchLinks:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def add(self, *, batch_id: str, job_id: str, endpoint: str, input_file_id: str, refused: dict[str, str],
            metadata: dict[str, str] | None) -> OpenAIBatchRow:
        with session_scope(self.sessions) as session:
            session.add(OpenAIBatchRow(batch_id=batch_id, job_id=job_id, endpoint=endpoint, input_file_id=input_file_id,
                                       refused=refused, batch_metadata=metadata))
        return self.get(batch_id)

    def get(self, batch_id: str) -> OpenAIBatchRow:
        with self.sessions() as session:
            row = session.get(OpenAIBatchRow, batch_id)
        if row is None:
            raise NotFound(f"no batch {batch_id!r}: see GET /v1/batches", field="batch_id")
        return row

    def list(self) -> list[OpenAIBatchRow]:
        """Newest first."""
        with self.sessions() as session:
            return list(session.scalars(select(OpenAIBatchRow).order_by(OpenAIBatchRow.created_at.desc(), OpenAIBatchRow.batch_id)))

    def set_results(self, batch_id: str, output_file_id: str, error_file_id: str | None) -> bool:
        """Record the result files once: False when another process recorded its own first (compare-and-set)."""
        with session_scope(self.sessions) as session:
            won = session.execute(update(OpenAIBatchRow).where(
                OpenAIBatchRow.batch_id == batch_id, OpenAIBatchRow.output_file_id.is_(None),
            ).values(output_file_id=output_file_id, error_file_id=error_file_id)).rowcount
        return bool(won)
