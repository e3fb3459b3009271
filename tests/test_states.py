"""Every resource's status moves only through its lifecycle (tuneforge.lifecycle): the legal moves happen through the
real services on a real SQLite database in a temporary home, and the illegal ones are refused with a Conflict naming
the resource and both statuses, leaving the row as it was.

Rows a service would only reach after a process ran (a job whose process died, a finished ingestion job) are written
as that process would have left them; no job or ingestion process is started here.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database, session_scope, utcnow
from tuneforge.db.tables import CustomizationJobRow, DataSourceRow, IngestionJobRow, KnowledgeBaseRow
from tuneforge.errors import Conflict
from tuneforge.jobs.process import JobProcess
from tuneforge.jobs.service import MAX_ATTEMPTS, JobService
from tuneforge.jobs.states import JOB, JobStatus, initial_details
from tuneforge.knowledge.ingest_process import IngestionProcess
from tuneforge.knowledge.requests import DataSourceRequest, KnowledgeBaseRequest
from tuneforge.knowledge.service import KnowledgeBaseService
from tuneforge.knowledge.states import INGESTION_JOB, DataSourceStatus, IngestionJobStatus, KnowledgeBaseStatus
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.registry.states import MODEL, ModelStatus
from tuneforge.serving.deployments import DeploymentService, DeploymentStatus
from tuneforge.settings import load_settings

ROLE = "arn:aws:iam::123456789012:role/states"
DEAD_PID = 2**22 + 12345  # above Linux's default pid_max: no process has it
LONG_AGO = timedelta(minutes=5)  # older than the grace a row being started gets


@pytest.fixture
def env(home, tiny_model_dir, tiny_embedder_dir):
    settings = load_settings()
    sessions = open_database(settings.database_url)
    catalog = Catalog(settings, sessions)
    catalog.add("tiny", str(tiny_model_dir))
    catalog.add("tiny.embedder", str(tiny_embedder_dir), embedding=True)
    return settings, sessions, catalog


def conflict(call, *words: str) -> Conflict:
    with pytest.raises(Conflict) as caught:
        call()
    for word in words:
        assert word in caught.value.message, caught.value.message
    return caught.value


# ---- customization jobs ---------------------------------------------------------------------------------------------
def add_job(sessions, tmp_path: Path, name: str, status: JobStatus, **values) -> str:
    now = utcnow()
    job_id = f"{name[:8]:0<8}0000"[:12]
    with session_scope(sessions) as session:
        session.add(CustomizationJobRow(
            job_id=job_id, job_arn=f"arn:aws:bedrock:us-east-1:000000000000:model-customization-job/tiny/{job_id}",
            job_name=name, custom_model_name=f"{name}-model", role_arn=ROLE, base_model_id="tiny",
            base_model_arn="arn:aws:bedrock:us-east-1::foundation-model/tiny", customization_type="FINE_TUNING",
            hyperparameters={}, training_data_uri=str(tmp_path / "train.jsonl"), validation_data_uris=[],
            output_uri=str(tmp_path / "out"), job_tags=[], custom_model_tags=[], status=status.value,
            status_details=initial_details(now), progress={}, work_dir=str(tmp_path / "jobs" / job_id),
            pid=DEAD_PID, pid_started_at=1.0, host=None, heartbeat_at=now - LONG_AGO, attempts=MAX_ATTEMPTS,
            **values,
        ))
    return job_id


def test_customization_job_moves(env, tmp_path):
    settings, sessions, catalog = env
    jobs = JobService(settings, sessions, catalog, reconcile=False)
    running = add_job(sessions, tmp_path, "running", JobStatus.IN_PROGRESS)
    stopping = add_job(sessions, tmp_path, "stopping", JobStatus.STOPPING)
    with session_scope(sessions) as session:  # as if its process were being started: stop() only records the request
        session.execute(update(CustomizationJobRow).where(CustomizationJobRow.job_id == running)
                        .values(pid=None, heartbeat_at=utcnow()))

    assert jobs.stop("running", wait=False).status == JobStatus.STOPPING  # InProgress -> Stopping
    conflict(lambda: jobs.stop("running"), "job 'running' is Stopping", "cannot become Stopping")
    assert jobs.reconcile() == [stopping]  # its process is gone: Stopping -> Stopped
    assert jobs.get("stopping").status == JobStatus.STOPPED
    conflict(lambda: jobs.stop("stopping"), "job 'stopping' is Stopped", "cannot become Stopping")

    dead = add_job(sessions, tmp_path, "dead", JobStatus.IN_PROGRESS)
    assert dead in jobs.reconcile()  # out of attempts: InProgress -> Failed
    assert jobs.get("dead").status == JobStatus.FAILED and "ended unexpectedly" in jobs.get("dead").failure_message


def test_a_job_process_never_overwrites_an_ended_job(env, tmp_path):
    settings, sessions, _catalog = env
    add_job(sessions, tmp_path, "done", JobStatus.COMPLETED)
    process = JobProcess(settings, "done00000000")
    process.failed("too late")  # e.g. a reconciler closed it while this process was ending: refused, not written
    assert process.status() == JobStatus.COMPLETED
    conflict(lambda: process.move(JobStatus.STOPPED), "job 'done' is Completed", "cannot become Stopped")


# ---- ingestion jobs, data sources, knowledge bases ------------------------------------------------------------------
@pytest.fixture
def kb_env(env, tmp_path):
    settings, sessions, catalog = env
    kbs = KnowledgeBaseService(settings, sessions, catalog, reconcile=False)
    (tmp_path / "docs").mkdir()
    kb = kbs.create_knowledge_base(KnowledgeBaseRequest(name="kb", role_arn=ROLE, embedding_model="tiny.embedder"))
    ds = kbs.create_data_source(kb.knowledge_base_id, DataSourceRequest(name="ds", location=f"file://{tmp_path / 'docs'}/"))
    assert (kb.status, ds.status) == (KnowledgeBaseStatus.ACTIVE, DataSourceStatus.AVAILABLE)
    return sessions, kbs, kb.knowledge_base_id, ds.data_source_id


def add_ingestion_job(sessions, tmp_path: Path, kb_id: str, ds_id: str, job_id: str, status: IngestionJobStatus,
                      *, alive: bool) -> str:
    with session_scope(sessions) as session:
        session.add(IngestionJobRow(
            ingestion_job_id=job_id, knowledge_base_id=kb_id, data_source_id=ds_id, status=status.value, statistics={},
            failure_reasons=[], progress={}, work_dir=str(tmp_path / job_id), pid=None if alive else DEAD_PID,
            pid_started_at=None if alive else 1.0, host=None, heartbeat_at=utcnow() if alive else utcnow() - LONG_AGO,
        ))
    return job_id


def test_ingestion_job_moves(kb_env, tmp_path):
    sessions, kbs, kb_id, ds_id = kb_env
    starting = add_ingestion_job(sessions, tmp_path, kb_id, ds_id, "STARTING00", IngestionJobStatus.STARTING, alive=True)
    assert kbs.stop_ingestion_job(kb_id, ds_id, starting).status == IngestionJobStatus.STOPPING  # STARTING -> STOPPING
    conflict(lambda: kbs.stop_ingestion_job(kb_id, ds_id, starting), "ingestion job 'STARTING00' is STOPPING",
             "cannot become STOPPING")
    with session_scope(sessions) as session:  # its process is gone now
        session.execute(update(IngestionJobRow).values(heartbeat_at=utcnow() - LONG_AGO))
    assert kbs.get_ingestion_job(kb_id, ds_id, starting).status == IngestionJobStatus.STOPPED  # STOPPING -> STOPPED

    dead = add_ingestion_job(sessions, tmp_path, kb_id, ds_id, "DEAD000000", IngestionJobStatus.IN_PROGRESS, alive=False)
    assert kbs.reconcile() == [dead]  # IN_PROGRESS -> FAILED
    assert kbs.get_ingestion_job(kb_id, ds_id, dead).status == IngestionJobStatus.FAILED
    error = conflict(lambda: kbs.stop_ingestion_job(kb_id, ds_id, dead), "ingestion job 'DEAD000000' is FAILED",
                     "cannot become STOPPING")
    assert error.field == "ingestionJobId"


def test_an_ingestion_process_never_overwrites_an_ended_job(kb_env, tmp_path):
    sessions, kbs, kb_id, ds_id = kb_env
    job_id = add_ingestion_job(sessions, tmp_path, kb_id, ds_id, "DONE000000", IngestionJobStatus.COMPLETE, alive=True)
    process = IngestionProcess(job_id)
    process.failed("too late")
    assert process.status() == IngestionJobStatus.COMPLETE
    conflict(lambda: process.move(IngestionJobStatus.IN_PROGRESS), "is COMPLETE", "cannot become IN_PROGRESS")


def test_knowledge_base_and_data_source_moves(kb_env):
    sessions, kbs, kb_id, ds_id = kb_env
    with session_scope(sessions) as session:  # as a delete that did not finish would leave them
        session.execute(update(DataSourceRow).values(status=DataSourceStatus.DELETING.value))
    conflict(lambda: kbs.delete_data_source(kb_id, ds_id), f"data source '{ds_id}' is DELETING", "cannot become DELETING")
    with session_scope(sessions) as session:
        session.execute(update(DataSourceRow).values(status=DataSourceStatus.AVAILABLE.value))
    assert kbs.delete_data_source(kb_id, ds_id).status == DataSourceStatus.DELETING  # AVAILABLE -> DELETING

    with session_scope(sessions) as session:
        session.execute(update(KnowledgeBaseRow).values(status=KnowledgeBaseStatus.DELETING.value))
    conflict(lambda: kbs.delete_knowledge_base(kb_id), f"knowledge base '{kb_id}' is DELETING", "cannot become DELETING")
    with session_scope(sessions) as session:
        session.execute(update(KnowledgeBaseRow).values(status=KnowledgeBaseStatus.ACTIVE.value))
    assert kbs.delete_knowledge_base(kb_id).status == KnowledgeBaseStatus.DELETING  # ACTIVE -> DELETING
    assert kbs.list_knowledge_bases().items == []


# ---- custom models --------------------------------------------------------------------------------------------------
def test_custom_models_are_registered_active_and_active_is_final(env, tmp_path):
    settings, sessions, _catalog = env
    add_job(sessions, tmp_path, "trained", JobStatus.COMPLETED)
    with sessions() as session:
        job = session.get(CustomizationJobRow, "trained00000")
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    (artifact / "adapter_config.json").write_text("{}")
    model = CustomModelRegistry(settings, sessions).register(job, artifact_dir=artifact, artifact_kind="adapter",
                                                             training_loss=None, validation_loss=None)
    assert model.model_status == ModelStatus.ACTIVE
    # nothing moves a registered model today; the lifecycle says what may
    assert MODEL.check(ModelStatus.CREATING, ModelStatus.ACTIVE, name="m") == "Active"
    conflict(lambda: MODEL.check(model.model_status, ModelStatus.CREATING, name=model.model_name),
             "custom model 'trained-model' is Active", "cannot become Creating")


# ---- provisioned models ---------------------------------------------------------------------------------------------
def test_provisioned_model_moves(env):
    settings, sessions, catalog = env
    deployments = DeploymentService(settings, sessions, catalog, CustomModelRegistry(settings, sessions))
    row = deployments.create(name="dep", model_id="tiny", units=1)
    assert row.status == DeploymentStatus.CREATING
    deployments.settled(row.provisioned_model_id, model_arn=row.model_arn, units=1)  # Creating -> InService
    assert deployments.get("dep").status == DeploymentStatus.IN_SERVICE
    assert deployments.update("dep", units=2).status == DeploymentStatus.UPDATING  # InService -> Updating
    deployments.failed(row.provisioned_model_id, "out of memory")  # Updating -> InService, still serving 1 unit
    assert (deployments.get("dep").status, deployments.get("dep").model_units) == (DeploymentStatus.IN_SERVICE, 1)

    broken = deployments.create(name="broken", model_id="tiny", units=1)
    deployments.failed(broken.provisioned_model_id, "cannot load")  # Creating -> Failed
    assert deployments.get("broken").status == DeploymentStatus.FAILED
    conflict(lambda: deployments.settled(broken.provisioned_model_id, model_arn=broken.model_arn, units=1),
             "provisioned model 'broken' is Failed", "cannot become InService")
    assert deployments.get("broken").status == DeploymentStatus.FAILED


# ---- the compare-and-set write itself -------------------------------------------------------------------------------
def test_a_move_is_compare_and_set(env, tmp_path):
    _settings, sessions, _catalog = env
    job_id = add_job(sessions, tmp_path, "raced", JobStatus.IN_PROGRESS)
    where = CustomizationJobRow.job_id == job_id
    with session_scope(sessions) as session:
        assert JOB.move(session, CustomizationJobRow.status, where, JobStatus.STOPPING, name="raced")
        # the status it was read in has changed: nothing written, and no Conflict either
        assert not JOB.move(session, CustomizationJobRow.status, where & (CustomizationJobRow.status == "InProgress"),
                            JobStatus.FAILED, name="raced")
        assert not JOB.move(session, CustomizationJobRow.status, CustomizationJobRow.job_id == "gone", JobStatus.FAILED, name="gone")
    with sessions() as session:
        assert session.get(CustomizationJobRow, job_id).status == JobStatus.STOPPING
    assert INGESTION_JOB.sources(IngestionJobStatus.STOPPING) == ["IN_PROGRESS", "STARTING"]
