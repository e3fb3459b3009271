"""The process that runs one ingestion job: `python -m tuneforge.knowledge.ingest_process JOB_ID`.

Started detached by KnowledgeBaseService.start_ingestion_job (tuneforge.jobs.runner), so it outlives the
API or CLI process that started it. Reads top to bottom: record its pid -> start an embedding worker for the
knowledge base's model -> sync the data source (tuneforge.knowledge.ingest) with progress and statistics
written to the job row every `HEARTBEAT_SECONDS` -> COMPLETE. SIGTERM (StopIngestionJob) stops it between
two documents: STOPPED. Any other error: FAILED with the reason. Its log is `<work_dir>/job.log`.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from pathlib import Path

from sqlalchemy import update

from tuneforge.catalog.service import Catalog, embedding_spec
from tuneforge.db import open_database, session_scope, utcnow
from tuneforge.db.tables import DataSourceRow, IngestionJobRow, KnowledgeBaseRow
from tuneforge.errors import TuneforgeError
from tuneforge.knowledge.embedding import embedding_model_facts
from tuneforge.knowledge.ingest import SyncResult, SyncStopped, data_source_chunker, sync
from tuneforge.knowledge.service import open_kb_store
from tuneforge.processes import local as runner
from tuneforge.serving.client import WorkerProcess
from tuneforge.settings import load_settings

HEARTBEAT_SECONDS = 1.0


class IngestionProcess:
    def __init__(self, job_id: str) -> None:
        self.settings = load_settings()
        self.sessions = open_database(self.settings.database_url)
        self.job_id = job_id
        self.stop_requested = False
        self._last_beat = 0.0
        with self.sessions() as session:
            self.job = session.get(IngestionJobRow, job_id)
            if self.job is None:
                raise SystemExit(f"no ingestion job {job_id}")
            self.ds = session.get(DataSourceRow, self.job.data_source_id)
            self.kb = session.get(KnowledgeBaseRow, self.job.knowledge_base_id)

    def save(self, **values) -> None:
        with session_scope(self.sessions) as session:
            session.execute(update(IngestionJobRow).where(IngestionJobRow.ingestion_job_id == self.job_id).values(**values))

    def progress(self, progress: dict, result: SyncResult) -> None:
        now = time.monotonic()
        if progress.get("phase") in ("listing", "complete") or now - self._last_beat >= HEARTBEAT_SECONDS:
            self._last_beat = now
            self.save(progress=progress, statistics=dict(result.statistics), failure_reasons=list(result.failure_reasons),
                      heartbeat_at=utcnow())

    def run(self) -> None:
        me = runner.this_process()
        self.save(pid=me.pid, pid_started_at=me.started_at, host=me.host, heartbeat_at=utcnow(), status="IN_PROGRESS")
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
        self.save(status="COMPLETE", statistics=result.statistics, failure_reasons=result.failure_reasons,
                  progress={"phase": "complete"}, heartbeat_at=utcnow())


def main(argv: list[str] | None = None) -> int:
    job_id = (argv or sys.argv[1:])[0]
    job = IngestionProcess(job_id)

    def on_term(_signum, _frame) -> None:
        job.stop_requested = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        job.run()
        print(f"ingestion job {job_id} complete", flush=True)
        return 0
    except SyncStopped as stopped:
        result = stopped.args[0]
        job.save(status="STOPPED", progress={"phase": "stopped"}, statistics=result.statistics, failure_reasons=result.failure_reasons)
        return 0
    except TuneforgeError as exc:
        job.save(status="FAILED", failure_reasons=[exc.message])
        print(f"ingestion job {job_id} failed: {exc.message}", flush=True)
        return 1
    except Exception as exc:  # never leave the job IN_PROGRESS
        traceback.print_exc()
        job.save(status="FAILED", failure_reasons=[f"internal error ({type(exc).__name__}: {exc}); see {job.job.work_dir}/{runner.LOG_NAME}"])
        return 1


if __name__ == "__main__":
    sys.exit(main())
