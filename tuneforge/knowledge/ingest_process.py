"""The process that runs one ingestion job: `python -m tuneforge.knowledge.ingest_process JOB_ID`.

Started detached by KnowledgeBaseService.start_ingestion_job (tuneforge.processes), so it outlives the
API or CLI process that started it. Reads top to bottom: record its pid -> start an embedding worker for the
knowledge base's model -> sync the data source (tuneforge.knowledge.ingest) with progress and statistics
written to the job row every `HEARTBEAT_SECONDS` -> COMPLETE. SIGTERM (StopIngestionJob) stops it between
two documents: STOPPED. Any other error: FAILED with the reason. Its log is `<work_dir>/job.log`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import select, update

from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database, session_scope, utcnow
from tuneforge.db.tables import DataSourceRow, IngestionJobRow, KnowledgeBaseRow
from tuneforge.errors import Conflict
from tuneforge.knowledge.embedding import embedding_model_facts
from tuneforge.knowledge.ingest import SyncResult, SyncStopped, data_source_chunker, sync
from tuneforge.knowledge.service import open_kb_store
from tuneforge.knowledge.states import INGESTION_JOB, IngestionJobStatus
from tuneforge.models.specs import embedding_spec
from tuneforge.processes.detached import Heartbeat, run_detached, this_process
from tuneforge.processes.local import LOG_NAME
from tuneforge.serving.client import WorkerProcess
from tuneforge.settings import load_settings

HEARTBEAT_SECONDS = 1.0


class IngestionProcess:
    def __init__(self, job_id: str) -> None:
        self.settings = load_settings()
        self.sessions = open_database(self.settings.database_url)
        self.job_id = job_id
        self.stop_requested = False
        self._heartbeat = Heartbeat(HEARTBEAT_SECONDS)
        with self.sessions() as session:
            self.job = session.get(IngestionJobRow, job_id)
            if self.job is None:
                raise SystemExit(f"no ingestion job {job_id}")
            self.ds = session.get(DataSourceRow, self.job.data_source_id)
            self.kb = session.get(KnowledgeBaseRow, self.job.knowledge_base_id)

    def save(self, **values) -> None:
        with session_scope(self.sessions) as session:
            session.execute(update(IngestionJobRow).where(IngestionJobRow.ingestion_job_id == self.job_id).values(**values))

    def move(self, target: IngestionJobStatus, **values) -> None:
        """The job's status becomes `target` (tuneforge.knowledge.states), or Conflict if that is not legal now."""
        with session_scope(self.sessions) as session:
            INGESTION_JOB.move(session, IngestionJobRow.status, IngestionJobRow.ingestion_job_id == self.job_id, target,
                               name=self.job_id, **values)

    def finish(self, target: IngestionJobStatus, **values) -> None:
        try:
            self.move(target, **values)
        except Conflict as exc:  # never overwrite an ended job (a reconciler may have closed it)
            print(f"not recorded: {exc.message}", flush=True)

    def status(self) -> str | None:
        with self.sessions() as session:
            return session.scalar(select(IngestionJobRow.status).where(IngestionJobRow.ingestion_job_id == self.job_id))

    def progress(self, progress: dict, result: SyncResult) -> None:
        if self._heartbeat.due(force=progress.get("phase") in ("listing", "complete")):
            self.save(progress=progress, statistics=dict(result.statistics), failure_reasons=list(result.failure_reasons),
                      heartbeat_at=utcnow())

    def run(self) -> None:
        me = this_process()
        self.save(pid=me.pid, pid_started_at=me.started_at, host=me.host, heartbeat_at=utcnow())
        if self.stop_requested or self.status() == IngestionJobStatus.STOPPING:  # stopped before it began
            raise SyncStopped(SyncResult(dict(self.job.statistics)))
        self.move(IngestionJobStatus.IN_PROGRESS)
        catalog = Catalog(self.settings, self.sessions)
        spec = embedding_spec(catalog, self.kb.embedding_model_id)
        facts = embedding_model_facts(Path(spec.checkpoint))
        store = open_kb_store(self.kb, self.settings)
        try:
            with WorkerProcess(spec) as worker:
                chunking = (self.ds.vector_ingestion_configuration or {}).get("chunkingConfiguration")
                chunker = data_source_chunker(chunking, tokenizer=facts.tokenizer(), token_limit=facts.chunk_token_limit, embed=worker.embed)
                result = sync(self.ds, store=store, sessions=self.sessions, chunker=chunker, embed=worker.embed,
                              token_limit=facts.chunk_token_limit, on_progress=self.progress,
                              should_stop=lambda: self.stop_requested)
        finally:
            store.close()
        self.move(IngestionJobStatus.COMPLETE, statistics=result.statistics, failure_reasons=result.failure_reasons,
                  progress={"phase": "complete"}, heartbeat_at=utcnow())
        print(f"ingestion job {self.job_id} complete", flush=True)

    def stopped(self, exc: BaseException) -> None:
        result = exc.args[0]
        self.finish(IngestionJobStatus.STOPPED, progress={"phase": "stopped"}, statistics=result.statistics,
                    failure_reasons=result.failure_reasons)

    def failed(self, message: str) -> None:
        self.finish(IngestionJobStatus.FAILED, failure_reasons=[message])


def main(argv: list[str] | None = None) -> int:
    job_id = (argv or sys.argv[1:])[0]
    job = IngestionProcess(job_id)
    return run_detached(job, name=f"ingestion job {job_id}", log_path=Path(job.job.work_dir) / LOG_NAME, stop=(SyncStopped,))


if __name__ == "__main__":
    sys.exit(main())
