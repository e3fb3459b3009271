"""What each console page shows, read from the services the server built; no HTTP here (routes.py renders it).

Every function takes the `Services` of `app.state.services` as `s` and returns plain data for a template or a JSON
reply. Errors are the tree's (NotFound, InvalidInput, Conflict), whose messages the console shows as they are.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, get_args

from tuneforge.catalog.entries import Customization, Modality
from tuneforge.data.model_tokens import model_token_counter
from tuneforge.data.records import DatasetKind
from tuneforge.data.validate import validate_dataset
from tuneforge.errors import InvalidInput, NotFound, TuneforgeError
from tuneforge.jobs.layout import JobOutputs
from tuneforge.jobs.service import is_terminal, model_family
from tuneforge.jobs.spec import CUSTOMIZATION_TYPES, JobRequest
from tuneforge.jobs.states import JobStatus
from tuneforge.models.resolve import LOADABLE
from tuneforge.processes.local import LOG_NAME
from tuneforge.training.hparams import Family, family_range
from tuneforge.training.lengths import record_limit

JOBS_PER_PAGE = 50
MAX_CHART_POINTS = 500  # a polyline of more points than the chart is wide draws nothing more, only slower
LOG_TAIL_BYTES = 16 * 1024
LOG_TAIL_LINES = 40
RECENT_FAILURES = 5
# the hyperparameters the create form offers (the rest keep their defaults): Bedrock's four, then ours
FORM_HYPERPARAMETERS = ("epochCount", "batchSize", "learningRate", "learningRateWarmupSteps", "maxSequenceLength",
                        "method", "loraRank", "loraAlpha", "loraDropout", "seed")


# ---- overview ---------------------------------------------------------------------------------------------------
def overview(s) -> dict:
    counts = s.jobs.count_by_status()
    running = [job_progress(r) for r in s.jobs.list(status=JobStatus.IN_PROGRESS.value).jobs]
    return {
        "job_counts": {status.value: counts.get(status.value, 0) for status in JobStatus},
        "custom_models": len(s.registry.list().models),
        "provisioned": s.deployments.list().deployments,
        "on_demand": s.custom_deployments.list().deployments,
        "knowledge_bases": len(s.knowledge.list_knowledge_bases().items),
        "running": running,
        "failures": s.jobs.list(status=JobStatus.FAILED.value, max_results=RECENT_FAILURES).jobs,
    }


# ---- foundation models ------------------------------------------------------------------------------------------
def foundation_models(s, *, text: str = "", customization: str = "", modality: str = "") -> dict:
    try:
        models = s.catalog.list(customization=Customization(customization) if customization else None,
                                output_modality=Modality(modality) if modality else None)
    except ValueError:
        raise InvalidInput(f"filter: customization is one of {', '.join(Customization)} and output one of "
                           f"{', '.join(Modality)}", field="filter") from None
    needle = text.strip().lower()
    if needle:
        models = [m for m in models if needle in m.model_id.lower() or needle in m.provider_name.lower()
                  or needle in m.model_name.lower()]
    return {"models": models, "text": text, "customization": customization, "modality": modality,
            "customizations": [c.value for c in Customization], "modalities": [m.value for m in Modality]}


# ---- customization jobs -----------------------------------------------------------------------------------------
def jobs_page(s, *, next_token: str | None = None, status: str = "") -> dict:
    page = s.jobs.list(status=status or None, max_results=JOBS_PER_PAGE, next_token=next_token or None)
    return {"jobs": page.jobs, "next_token": page.next_token, "status": status, "statuses": [st.value for st in JobStatus]}


def create_form(s) -> dict:
    """The base models that can be customized, and each family's hyperparameter table (default, low, high)."""
    bases = [m for m in s.catalog.list() if m.customizations_supported]
    ranges: dict[str, dict] = {}
    for family in get_args(Family):
        ranges[family] = {}
        for key in FORM_HYPERPARAMETERS:
            try:
                low, high, default = family_range(family, key)
            except KeyError:  # not numeric (method), or not taken by this family (Llama 2 has no warmup)
                continue
            ranges[family][key] = {"low": low, "high": high, "default": default}
    return {"bases": bases, "families": {m.model_id: model_family(m.model_id) for m in bases}, "ranges": ranges,
            "types": CUSTOMIZATION_TYPES, "hyperparameters": FORM_HYPERPARAMETERS}


@dataclass(frozen=True)
class JobForm:
    """The create form's text fields, as submitted (an uploaded training file travels beside it)."""

    job_name: str
    custom_model_name: str
    base_model: str
    customization_type: str
    training_data: str
    validation_data: str
    hyperparameters: dict[str, str]


def job_request(s, form: JobForm, training_uri: str, training_file_id: str | None = None) -> JobRequest:
    name = form.job_name.strip()
    return JobRequest(
        job_name=name, custom_model_name=form.custom_model_name.strip() or name, base_model_identifier=form.base_model,
        training_data_uri=training_uri, output_uri=str(s.settings.home / "outputs"),
        customization_type=form.customization_type,
        validation_data_uris=(_location(form.validation_data),) if form.validation_data.strip() else (),
        hyperparameters=form.hyperparameters, training_file_id=training_file_id,
    )


def create_job(s, form: JobForm, upload: BinaryIO | None = None, filename: str = ""):
    """Create the job; an uploaded training file is kept through the files service (checked line by line first, and
    not deletable while the job runs), and removed again when the job is refused."""
    if upload is None:
        return s.jobs.create(job_request(s, form, training_location(form)))
    stored = s.files.upload(upload, filename=filename, purpose="fine-tune")
    try:
        return s.jobs.create(job_request(s, form, stored.uri, stored.file_id))
    except TuneforgeError:
        s.files.delete(stored.file_id)
        raise


def training_location(form: JobForm) -> str:
    if not form.training_data.strip():
        raise InvalidInput("training data: give a path or URI (file://, s3://) or upload a JSONL file", field="training_data")
    return _location(form.training_data)


def _location(value: str) -> str:
    """Local paths become absolute, as the CLI makes them: the job process runs in another directory."""
    value = value.strip()
    return value if "://" in value else str(Path(value).expanduser().resolve())


def validate(s, form: JobForm, upload: BinaryIO | None = None) -> dict:
    """The validator's report line by line, with the base model's own tokenizer (`tokenizers`: no torch here)."""
    if form.customization_type not in CUSTOMIZATION_TYPES:
        raise InvalidInput(f"type must be one of {', '.join(CUSTOMIZATION_TYPES)}", field="customizationType")
    resolver = s.deployments.models
    count, context = model_token_counter(resolver.base_spec(resolver.resolve(form.base_model, kinds=LOADABLE, field="baseModel")))
    raw_length = form.hyperparameters.get("maxSequenceLength", "")
    max_len = int(raw_length) if raw_length.strip().isdigit() else None
    raw_batch = form.hyperparameters.get("batchSize", "")
    limit = record_limit(form.customization_type, context=context, max_sequence_length=max_len,
                         base_model_id=form.base_model, batch_size=int(raw_batch) if raw_batch.strip().isdigit() else 1)
    kind = DatasetKind(form.customization_type)
    if upload is not None:
        # not kept: the job is created from a stored copy (the files service's) when the form is submitted
        with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as handle:
            shutil.copyfileobj(upload, handle)
        try:
            report = validate_dataset(handle.name, kind, count_tokens=count, limit=limit, max_sequence_length=max_len)
        finally:
            os.unlink(handle.name)
    else:
        report = validate_dataset(training_location(form), kind, count_tokens=count, limit=limit, max_sequence_length=max_len)
    return {"ok": report.ok, "records": report.records, "tokens": report.tokens, "maxRecordTokens": report.max_record_tokens,
            "problemCount": report.problem_count, "problems": [str(p) for p in report.problems],
            "limit": f"{limit.tokens:,} tokens ({limit.source})" if limit else "none"}


def job_page(s, identifier: str) -> dict:
    row = s.jobs.get(identifier)
    outputs = JobOutputs(Path(row.work_dir), row.output_uri, row.job_id).remote  # Bedrock's layout: metrics and job.log
    return {"job": row, "status": job_status(s, row.job_name), "outputs": outputs}


def job_progress(row) -> dict:
    p = row.progress or {}
    total = p.get("totalSteps") or 0
    return {"name": row.job_name, "step": p.get("step", 0), "totalSteps": total,
            "percent": round(100 * p.get("step", 0) / total) if total else 0}


def job_status(s, identifier: str) -> dict:
    """What the job page polls: status, stages, progress, the loss curves (downsampled) and the log's tail."""
    row = s.jobs.get(identifier)
    training, validation = JobOutputs(Path(row.work_dir), row.output_uri, row.job_id).metrics()
    p = row.progress or {}
    return {
        "status": row.status, "terminal": is_terminal(row),
        "stages": {k.removesuffix("Details"): v.get("status") for k, v in (row.status_details or {}).items()},
        "progress": {**job_progress(row), "epoch": p.get("epoch"), "epochs": p.get("epochs"), "phase": p.get("phase"),
                     "tokensPerSecond": p.get("tokensPerSecond"), "etaSeconds": p.get("etaSeconds"),
                     "trainingLoss": p.get("trainingLoss")},
        "training": downsample([(int(r["step_number"]), float(r["training_loss"])) for r in training]),
        "validation": downsample([(int(r["step_number"]), float(r["validation_loss"])) for r in validation]),
        "chosen": row.chosen_hyperparameters or {},
        "customModel": row.custom_model_name if row.output_model_arn else None,
        "failure": row.failure_message,
        "log": log_tail(Path(row.work_dir) / LOG_NAME),
    }


def downsample(points: list[tuple[int, float]], most: int = MAX_CHART_POINTS) -> list[tuple[int, float]]:
    """At most `most` points, evenly spaced, the first and the last kept (a curve's ends are what people read)."""
    if len(points) <= most:
        return points
    step = (len(points) - 1) / (most - 1)
    return [points[round(i * step)] for i in range(most)]


def log_tail(path: Path) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
        text = handle.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def stop_job(s, identifier: str):
    return s.jobs.stop(identifier, wait=False)


# ---- custom models ----------------------------------------------------------------------------------------------
def custom_models(s) -> dict:
    return {"models": s.registry.list().models}


def custom_model(s, identifier: str) -> dict:
    row = s.registry.get(identifier)
    job = None
    if row.job_id:
        try:
            job = s.jobs.get(row.job_id)
        except NotFound:  # the job's row may be gone; the model page still shows
            job = None
    return {"model": row, "job": job, "deployments": s.custom_deployments.list(model_arn=row.model_arn).deployments,
            "provisioned": s.deployments.list(model_arn=row.model_arn).deployments}


def deploy(s, model: str, name: str):
    """An on-demand deployment of a custom model (CreateCustomModelDeployment): Active at once, loaded on first use."""
    return s.custom_deployments.create(name=name.strip(), model_arn=s.registry.get(model).model_arn)


def undeploy(s, deployment: str):
    """Delete an on-demand deployment; returns it (the console goes back to its model's page)."""
    row = s.custom_deployments.get(deployment)
    s.custom_deployments.delete(row.deployment_arn)
    return row, s.registry.get(row.model_arn)


# ---- provisioned throughput -------------------------------------------------------------------------------------
def provisioned(s) -> dict:
    """Provisioned models and what each may serve: text foundation models and active custom models."""
    return {"deployments": s.deployments.list().deployments,
            "models": [m.model_id for m in s.catalog.list(output_modality=Modality.TEXT)]
                      + [m.model_name for m in s.registry.list(status="Active").models]}


def _units(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"model units must be a whole number, got {raw!r}", field="modelUnits") from None


def provision(s, name: str, model: str, units: str):
    return s.deployments.create(name=name.strip(), model_id=model, units=_units(units))


def update_provisioned(s, name: str, *, model: str = "", units: str = ""):
    """Scale (units) or re-point (model); the supervisor makes it true while the old workers keep serving."""
    return s.deployments.update(name, model_id=model or None, units=_units(units) if units else None)


def delete_provisioned(s, name: str):
    row = s.deployments.get(name)
    s.deployments.delete(row.provisioned_model_arn)
    return row


# ---- access keys and the audit log (read-only pages) ----------------------------------------------------------
AUDIT_SHOWN = 200
AUDIT_SEARCHED = 5_000  # the newest events a filter looks through


def audit_log(s, *, service: str = "", operation: str = "", key: str = "") -> dict:
    events = s.audit.recent(AUDIT_SEARCHED)
    chosen = [e for e in events if (not service or e.service == service) and (not operation or operation.lower() in e.operation.lower())
              and (not key or e.access_key_id == key)]
    return {"events": chosen[:AUDIT_SHOWN], "more": len(chosen) > AUDIT_SHOWN, "service": service, "operation": operation,
            "key": key, "services": sorted({e.service for e in events}), "searched": AUDIT_SEARCHED}


def access_keys(s) -> dict:
    return {"keys": s.access_keys.list()}  # ids, names and rights: never a secret


# ---- playground -------------------------------------------------------------------------------------------------
def playground(s) -> dict:
    """What can be compared: text foundation models, active custom models (served on demand) and deployments."""
    return {  # (what the request names, what the menu shows)
        "foundation": [(m.model_id, m.model_id) for m in s.catalog.list(output_modality=Modality.TEXT)],
        "custom": [(m.model_name, m.model_name) for m in s.registry.list(status="Active").models],
        "on_demand": [(d.deployment_arn, d.deployment_name) for d in s.custom_deployments.list().deployments],
        "provisioned": [(d.provisioned_model_name, d.provisioned_model_name) for d in s.deployments.list().deployments],
    }
