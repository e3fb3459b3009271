"""The process that runs one batch inference job: `python -m tuneforge.batch.process JOB_ID`.

Started detached by BatchService (tuneforge.processes), so it outlives the API or CLI process that started it.
Reads top to bottom:
  Validating: list the input's .jsonl files, check they are JSONL, count the records -> Scheduled: wait for one of
  TUNEFORGE_BATCH_CONCURRENCY slots (tuneforge.batch.queue) -> InProgress: start one model worker and keep it busy,
  with up to twice its batch size of records in flight (its engine decodes them together, continuous batching),
  appending each finished record to the job's results -> write Bedrock's output files -> Completed, or
  PartiallyCompleted when some records ended with an error (or the timeout came first).
A bad record (not JSON, no recordId or modelInput, a body the model's family refuses, a prompt longer than the
context) ends as its own error line; the job goes on. A worker that dies is replaced (WORKER_ATTEMPTS in all) and
gets the records that were in flight. SIGTERM (StopModelInvocationJob) cancels what is in flight
and publishes what finished: Stopped. A restarted process (its predecessor died) re-reads the results and sends
only the records not done. Its log is `<work_dir>/job.log`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from sqlalchemy import select, update

from tuneforge.batch.queue import claim_slot, release_slot
from tuneforge.batch.records import InputFile, Record, ResultLog, check_jsonl, count_records, counts, input_files, lines, \
    open_logs, parse_record, publish
from tuneforge.batch.request import InvocationType
from tuneforge.batch.states import BATCH_JOB, OPEN, BatchStatus
from tuneforge.catalog.entries import BodyFormat
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database, session_scope, utcnow
from tuneforge.db.tables import BatchJobRow
from tuneforge.errors import Conflict, InvalidInput, ModelFailure, Throttled, TuneforgeError
from tuneforge.inference.params import GenerationRequest
from tuneforge.inference.spec import Capacity
from tuneforge.models.resolve import ModelResolver
from tuneforge.processes.detached import Heartbeat, run_detached, this_process
from tuneforge.processes.executor import ProcessHandle
from tuneforge.processes.local import LOCAL, LOG_NAME
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.serving.client import WorkerProcess
from tuneforge.serving.loadable import loadable_model
from tuneforge.serving.custom_deployments import CustomModelDeployments
from tuneforge.settings import load_settings
from tuneforge.wire.batch import record_error, record_output
from tuneforge.wire.bodies import family_of, parse_body, parse_converse, render_converse, render_response

HEARTBEAT_SECONDS = 1.0  # how often counts, progress and the heartbeat reach the database
SLOT_POLL_SECONDS = 1.0
TICK_SECONDS = 0.2  # how soon a stop is noticed while every record in flight is still generating
THROTTLED_RETRY_SECONDS = 0.5
WORKER_ATTEMPTS = 3  # a model worker that dies (out of memory, killed) is replaced this many times in all


class BatchStopped(Exception):
    pass


class BatchProcess:
    def __init__(self, job_id: str) -> None:
        self.settings = load_settings()
        self.sessions = open_database(self.settings.database_url)
        self.job_id = job_id
        self.stop_requested = False
        self._heartbeat = Heartbeat(HEARTBEAT_SECONDS)
        with self.sessions() as session:
            self.job = session.get(BatchJobRow, job_id)
        if self.job is None:
            raise SystemExit(f"no model invocation job {job_id}")
        self.work_dir = Path(self.job.work_dir)
        self.files: list[InputFile] = []
        self.logs: list[ResultLog] = []
        self.total = 0
        self.worker_failure: ModelFailure | None = None
        self.timed_out = False
        self.sent = 0  # records handed to the worker by this process (a restarted one sends only those not done)
        self.in_flight = 0
        self.peak = 0  # the most in flight at once

    # ---- database -------------------------------------------------------------------------------
    def save(self, **values) -> None:
        with session_scope(self.sessions) as session:
            session.execute(update(BatchJobRow).where(BatchJobRow.job_id == self.job_id).values(updated_at=utcnow(), **values))
        self._reload()

    def move(self, target: BatchStatus, **values) -> None:
        """The job's status becomes `target` (tuneforge.batch.states), or Conflict if it may not now."""
        with session_scope(self.sessions) as session:
            BATCH_JOB.move(session, BatchJobRow.status, BatchJobRow.job_id == self.job_id, target, name=self.job.job_name,
                           updated_at=utcnow(), **values)
        self._reload()

    def _reload(self) -> None:
        with self.sessions() as session:
            self.job = session.get(BatchJobRow, self.job_id)

    def status(self) -> str:
        with self.sessions() as session:
            return session.scalar(select(BatchJobRow.status).where(BatchJobRow.job_id == self.job_id))

    def stopping(self) -> bool:
        return self.stop_requested or self.status() == BatchStatus.STOPPING.value  # a lost signal still stops it

    # ---- the job --------------------------------------------------------------------------------
    def run(self) -> None:
        if self.job.status not in OPEN:  # ended before this process started
            print(f"batch job {self.job_id} is {self.job.status}: nothing to do", flush=True)
            return
        me = this_process()
        self.save(pid=me.pid, pid_started_at=me.started_at, host=me.host, heartbeat_at=utcnow())
        if self.stopping():
            raise BatchStopped()
        self.validate()
        try:
            if not self.wait_for_slot(me):
                return  # expired in the queue
            self.infer()
        finally:  # ended one way or another: the next job in the queue may start
            with session_scope(self.sessions) as session:
                release_slot(session, self.job_id, me)

    def validate(self) -> None:
        """The input's files, checked again (they may have changed since create), and the number of records."""
        if self.job.status == BatchStatus.SUBMITTED.value:
            self.move(BatchStatus.VALIDATING, progress={"phase": "validating"})
        self.files = input_files(self.job.input_config["s3Uri"])
        check_jsonl(self.files)
        if self.job.status == BatchStatus.VALIDATING.value:
            self.total = count_records(self.files)
            self.move(BatchStatus.SCHEDULED, counts={"totalRecordCount": self.total, "processedRecordCount": 0,
                                                     "successRecordCount": 0, "errorRecordCount": 0},
                      progress={"phase": "queued"})
        else:  # restarted after validation: the count it made then
            self.total = self.job.counts["totalRecordCount"]

    def wait_for_slot(self, me: ProcessHandle) -> bool:
        """First come first served; False when the job expired waiting (timeoutDurationInHours, as in Bedrock)."""
        while True:
            if self.stopping():
                raise BatchStopped()
            if self.job.status == BatchStatus.SCHEDULED.value and utcnow() >= self.job.expires_at:
                self.move(BatchStatus.EXPIRED, end_time=utcnow(), progress={"phase": "expired"},
                          message=f"the job waited for a slot longer than its timeoutDurationInHours ({self.job.timeout_hours}): create it again")
                return False
            if claim_slot(self.sessions, self.job_id, me, concurrency=self.settings.batch_concurrency, executor=LOCAL) is not None:
                if self.job.status == BatchStatus.SCHEDULED.value:
                    self.move(BatchStatus.IN_PROGRESS, progress={"phase": "loading"})
                return True
            if self._heartbeat.due():
                self.save(heartbeat_at=utcnow())  # on another host, a fresh heartbeat keeps it in the queue
            time.sleep(SLOT_POLL_SECONDS)

    def infer(self) -> None:
        catalog = Catalog(self.settings, self.sessions)
        models = ModelResolver(self.settings, self.sessions, catalog, CustomModelRegistry(self.settings, self.sessions))
        model = loadable_model(models, CustomModelDeployments(self.settings, self.sessions, models), self.job.model_id)
        capacity = Capacity(max_batch_size=self.settings.max_batch_size, max_queue=self.settings.max_queue,
                            engine=self.settings.serving_engine,
                            python=(self.settings.vllm_python or None) if self.settings.serving_engine == "vllm" else None)
        self.logs = open_logs(self.work_dir, self.files)
        began = time.perf_counter()
        try:
            for attempt in range(1, WORKER_ATTEMPTS + 1):
                # a fresh spec each time: an encrypted custom model's decrypted copy is removed once a worker loaded it
                spec = capacity.apply(models.worker_spec(model.ref))
                done = sum(len(log.done) for log in self.logs)
                print(f"batch job {self.job_id}: {self.total} records, {done} done; loading {spec.model_id}", flush=True)
                with WorkerProcess(spec) as worker:
                    models.registry.release(spec)
                    self.save(progress={"phase": "inferring"}, heartbeat_at=utcnow())
                    # twice the batch: when a sequence finishes, the next one is already queued in the worker
                    window = min(2 * spec.max_batch_size, spec.max_batch_size + spec.max_queue)
                    asyncio.run(self.send_all(worker, model.body_format, window))
                if self.stopping() or self.worker_failure is None:
                    break
                if attempt < WORKER_ATTEMPTS:  # its records in flight were not written: the next worker gets them
                    print(f"batch job {self.job_id}: the model worker died ({self.worker_failure.message}); "
                          "starting another", flush=True)
                    self.worker_failure = None
            infer_seconds = time.perf_counter() - began  # model loads included after the first: what the bench compares
        finally:
            for log in self.logs:
                log.close()
        if self.stopping():
            raise BatchStopped()
        if self.worker_failure is not None:
            raise ModelFailure(f"the model worker died {WORKER_ATTEMPTS} times, the last: {self.worker_failure.message}. "
                               "The records it finished are in the output; see the job's log")
        manifest = self.publish()
        if self.timed_out:
            target = BatchStatus.PARTIALLY_COMPLETED
            message = (f"timeoutDurationInHours ({self.job.timeout_hours}) ran out after {manifest['processedRecordCount']} of "
                       f"{self.total} records: create a job for the rest")
        elif manifest["errorRecordCount"]:
            target = BatchStatus.PARTIALLY_COMPLETED
            message = f"{manifest['errorRecordCount']} of {self.total} records failed: see their error in the .out files"
        else:
            target, message = BatchStatus.COMPLETED, None
        self.move(target, end_time=utcnow(), counts=manifest, message=message, heartbeat_at=utcnow(),
                  progress={"phase": "done", "inferSeconds": round(infer_seconds, 3), "sent": self.sent, "peakInFlight": self.peak})
        print(f"batch job {self.job_id} {target.value}: {manifest}", flush=True)

    def halted(self) -> bool:
        if not self.timed_out and utcnow() >= self.job.expires_at:
            self.timed_out = True
        return self.stop_requested or self.worker_failure is not None or self.timed_out

    async def send_all(self, worker: WorkerProcess, body_format: BodyFormat | None, window: int) -> None:
        """Every record not done yet, at most `window` in flight; returns when all have finished or the job halted."""
        slots = asyncio.Semaphore(window)
        flight: set[asyncio.Task] = set()
        ticker = asyncio.create_task(self.tick(flight))
        try:
            for file, log in zip(self.files, self.logs, strict=True):
                for line, text in lines(file.uri):
                    if line in log.done:
                        continue
                    if self.halted():
                        break
                    record = parse_record(line, text)
                    where = f"{file.name} line {line}"
                    request = self.request_for(record, body_format, log, where)
                    if request is None:
                        continue
                    await slots.acquire()
                    if self.halted():
                        slots.release()
                        break
                    task = asyncio.create_task(self.one(worker, request, record, log, where, body_format, slots))
                    flight.add(task)
                    self.sent += 1
                    self.in_flight += 1
                    self.peak = max(self.peak, self.in_flight)
                    task.add_done_callback(flight.discard)
                if self.halted():
                    break
            if flight:
                await asyncio.gather(*flight, return_exceptions=True)
        finally:
            ticker.cancel()
            self.beat(force=True)
            print(f"batch job {self.job_id}: sent {self.sent} records to the worker, up to {self.peak} at once", flush=True)

    async def tick(self, flight: set[asyncio.Task]) -> None:
        """Notice a stop (the signal, or the row moved to Stopping) and cancel what is in flight; heartbeat meanwhile."""
        while True:
            await asyncio.sleep(TICK_SECONDS)
            if self._heartbeat.due():
                self.beat()
                if self.status() == BatchStatus.STOPPING.value:
                    self.stop_requested = True
            if self.stop_requested or self.worker_failure is not None:
                for task in list(flight):
                    task.cancel()  # closes its stream: the worker frees its place in the batch

    def beat(self, *, force: bool = False) -> None:
        if force or self.logs:
            self.save(counts=counts(self.logs, self.total), heartbeat_at=utcnow())

    def request_for(self, record: Record, body_format: BodyFormat | None, log: ResultLog, where: str) -> GenerationRequest | None:
        """The record as a generation request, or None after writing its error line (a record the model never sees)."""
        try:
            if record.problem is not None:
                raise InvalidInput(record.problem)
            if self.job.invocation_type == InvocationType.CONVERSE.value:
                return parse_converse(record.model_input)
            return parse_body(record.model_input, body_format or family_of(record.model_input))
        except InvalidInput as exc:
            log.add(record.line, record_error(record.record_id, record.model_input, exc, where), ok=False)
            return None

    async def one(self, worker: WorkerProcess, request: GenerationRequest, record: Record, log: ResultLog, where: str,
                  body_format: BodyFormat | None, slots: asyncio.Semaphore) -> None:
        try:
            while True:
                began = time.perf_counter()
                try:
                    result = await worker.agenerate(request)
                    break
                except Throttled:  # the worker's queue is full (another process shares it?): wait, then again
                    await asyncio.sleep(THROTTLED_RETRY_SECONDS)
            if self.job.invocation_type == InvocationType.CONVERSE.value:
                output = render_converse(result, int((time.perf_counter() - began) * 1000))
            else:
                output = render_response(result, body_format or family_of(record.model_input))
            log.add(record.line, record_output(record.record_id, record.model_input, output), ok=True,
                    input_tokens=result.prompt_tokens, output_tokens=result.completion_tokens)
        except ModelFailure as exc:
            if worker.alive():  # this record's own failure; the worker serves the others
                log.add(record.line, record_error(record.record_id, record.model_input, exc, where), ok=False)
            elif self.worker_failure is None and not self.stop_requested:
                # the worker is gone (a stop kills it too): not the record's fault, so it is left for a restart to redo
                self.worker_failure = exc
        except TuneforgeError as exc:  # this record's own: a prompt longer than the context, a parameter out of range
            log.add(record.line, record_error(record.record_id, record.model_input, exc, where), ok=False)
        finally:
            self.in_flight -= 1
            slots.release()

    def publish(self) -> dict[str, int]:
        self.save(progress={"phase": "writing output"})
        return publish(self.job.output_config["s3Uri"], self.job_id, self.files, self.logs, self.total)

    # ---- endings (tuneforge.processes.detached.run_detached) ------------------------------------
    def finish(self, target: BatchStatus, **values) -> None:
        try:
            self.move(target, end_time=utcnow(), heartbeat_at=utcnow(), **values)
        except Conflict as exc:  # never overwrite an ended job (a reconciler may have closed it)
            print(f"not recorded: {exc.message}", flush=True)

    def publish_partial(self) -> dict:
        """What finished, in Bedrock's layout, so a stopped or failed job keeps its output."""
        if not self.files:
            return {}
        if not self.logs:
            self.logs = open_logs(self.work_dir, self.files)
        try:
            return {"counts": self.publish()}
        except TuneforgeError as exc:
            print(f"could not write the output: {exc.message}", flush=True)
            return {"counts": counts(self.logs, self.total)}

    def stopped(self, _exc: BaseException) -> None:
        if self.status() not in OPEN:
            return
        if self.status() != BatchStatus.STOPPING.value:  # a SIGTERM from elsewhere than StopModelInvocationJob
            try:
                self.move(BatchStatus.STOPPING)
            except Conflict:
                return
        self.finish(BatchStatus.STOPPED, progress={"phase": "stopped"}, **self.publish_partial())

    def failed(self, message: str) -> None:
        self.finish(BatchStatus.FAILED, message=message[:2048], progress={"phase": "failed"}, **self.publish_partial())


def main(argv: list[str] | None = None) -> int:
    job_id = (argv or sys.argv[1:])[0]
    job = BatchProcess(job_id)
    return run_detached(job, name=f"batch job {job_id}", log_path=job.work_dir / LOG_NAME, stop=(BatchStopped,))


if __name__ == "__main__":
    sys.exit(main())
