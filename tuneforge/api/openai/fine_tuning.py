"""OpenAI's /v1/fine_tuning/jobs over tuneforge's customization jobs: one store, one job visible through both APIs.

A job created here is a Bedrock FINE_TUNING job (GetModelCustomizationJob shows it) whose data are uploaded files,
or with `method: {"type": "dpo"}` a PREFERENCE_TUNING job (tuneforge's DPO; its file holds preference pairs); a
FINE_TUNING or PREFERENCE_TUNING job created through Bedrock is listed here too. The OpenAI id of a job is its job name (unique), and
its fine_tuned_model is its custom model's name, which /v1/chat/completions serves at once, on demand.

    n_epochs -> epochCount, batch_size -> batchSize, learning_rate_multiplier -> learningRate (the multiplier times
    the base model's default rate for the method), seed -> seed, and for dpo beta -> beta; "auto", OpenAI's default,
    -> "auto", which the job chooses from its data (tuneforge.training.auto) and then reports.
"""

from __future__ import annotations

import re
import time
from datetime import datetime

from tuneforge.api.openai.protocol import FineTuningJobRequest
from tuneforge.api.services import Services
from tuneforge.db.tables import CustomizationJobRow
from tuneforge.errors import InvalidInput, NotFound
from tuneforge.files.checks import Purpose, fine_tune_kind
from tuneforge.ids import new_id
from tuneforge.jobs.events import job_events
from tuneforge.jobs.service import model_family
from tuneforge.jobs.spec import MAX_NAME, JobRequest
from tuneforge.jobs.states import JobStatus, StageStatus
from tuneforge.training.hparams import Hyperparameters, parse_hyperparameters

ORGANIZATION = "org-tuneforge"
MAX_METADATA = 16  # OpenAI's limits on metadata: 16 pairs, keys of 64 characters, values of 512
MAX_LIST = 100
# Bedrock's names in the job service's messages, as this API calls them
_FIELDS = {"hyperParameters.epochCount": "hyperparameters.n_epochs", "hyperParameters.batchSize": "hyperparameters.batch_size",
           "hyperParameters.learningRate": "hyperparameters.learning_rate_multiplier", "hyperParameters.seed": "seed",
           "baseModelIdentifier": "model", "customizationType": "model", "trainingDataConfig.s3Uri": "training_file",
           "validationDataConfig.validators[0].s3Uri": "validation_file", "customModelName": "suffix",
           "hyperParameters.beta": "hyperparameters.beta", "hyperParameters.method": "method"}
OPENAI_TYPES = {"FINE_TUNING": "supervised", "PREFERENCE_TUNING": "dpo"}  # the customization types this API describes


def create(s: Services, request: FineTuningJobRequest) -> dict:
    hp = request.chosen_hyperparameters()
    if request.integrations:
        raise InvalidInput("integrations: tuneforge reports to no outside service; follow the job through its events",
                           field="integrations")
    _check_metadata(request.metadata)
    training = s.files.require(request.training_file, Purpose.FINE_TUNE, field="training_file")
    validation = (s.files.require(request.validation_file, Purpose.FINE_TUNE, field="validation_file")
                  if request.validation_file else None)
    family = model_family(request.model)
    customization = "PREFERENCE_TUNING" if request.dpo else "FINE_TUNING"
    for field, row in (("training_file", training), ("validation_file", validation)):
        if row is not None and fine_tune_kind(row.uri).value != customization:  # refused now, not when the job validates
            holds, needs = ("supervised records", "supervised") if request.dpo else ("preference pairs", "dpo")
            raise InvalidInput(f"{field}: {row.file_id} holds {holds}, which method {needs!r} trains on; "
                               f"use method {needs!r} or upload a file for method {OPENAI_TYPES[customization]!r}", field=field)
    # OpenAI's default for each is "auto": tuneforge chooses it from the data (tuneforge.training.auto)
    raw: dict[str, str] = {"epochCount": str(hp.n_epochs) if isinstance(hp.n_epochs, int) else "auto",
                           "batchSize": str(hp.batch_size) if isinstance(hp.batch_size, int) else "auto",
                           "learningRate": "auto"}
    if isinstance(hp.learning_rate_multiplier, float):
        if not hp.learning_rate_multiplier > 0:
            raise InvalidInput("hyperparameters.learning_rate_multiplier: must be above 0", field="hyperparameters.learning_rate_multiplier")
        default = parse_hyperparameters({}, family=family, customization=customization).learning_rate
        raw["learningRate"] = repr(default * hp.learning_rate_multiplier)
    if hp.beta is not None:
        if not request.dpo:
            raise InvalidInput("hyperparameters.beta: applies to method dpo only", field="hyperparameters.beta")
        raw["beta"] = "auto" if hp.beta == "auto" else repr(float(hp.beta))
    if request.seed is not None:
        raw["seed"] = str(request.seed)
    token = new_id()
    job = JobRequest(
        job_name=f"ftjob-{token}", custom_model_name=_model_name(request.model, request.suffix, token),
        base_model_identifier=request.model, training_data_uri=training.uri, customization_type=customization,
        validation_data_uris=(validation.uri,) if validation else (), output_uri=str(s.settings.home / "fine-tuning"),
        hyperparameters=raw, training_file_id=training.file_id, validation_file_id=validation.file_id if validation else None,
        suffix=request.suffix, metadata=request.metadata,
    )
    try:
        return job_object(s.jobs.create(job))
    except (InvalidInput, NotFound) as exc:
        raise _renamed(exc) from None


def get(s: Services, job_id: str) -> dict:
    return job_object(_row(s, job_id))


def cancel(s: Services, job_id: str) -> dict:
    row = _row(s, job_id)
    return job_object(s.jobs.stop(row.job_id, wait=False))


def list_jobs(s: Services, *, after: str | None, limit: int, metadata: dict[str, str]) -> dict:
    _check_limit(limit)
    rows = [r for r in s.jobs.list().jobs if r.customization_type in OPENAI_TYPES  # newest first
            and all((r.job_metadata or {}).get(k) == v for k, v in metadata.items())]
    rows = _after(rows, after, key=lambda r: r.job_name)
    return {"object": "list", "data": [job_object(r) for r in rows[:limit]], "has_more": len(rows) > limit}


def events(s: Services, job_id: str, *, after: str | None, limit: int) -> dict:
    _check_limit(limit)
    row = _row(s, job_id)
    items = [{"object": "fine_tuning.job.event", "id": f"ftevent-{row.job_id}-{i}", "created_at": _ts(e.at), "level": e.level,
              "message": e.message, "data": e.data or {}, "type": "metrics" if e.is_metrics else "message"}
             for i, e in enumerate(job_events(row))][::-1]  # newest first, as OpenAI lists them
    items = _after(items, after, key=lambda e: e["id"])
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


def checkpoints(s: Services, job_id: str, *, after: str | None, limit: int) -> dict:
    """The job's model once it completed: the per-epoch checkpoints are removed when the model is registered."""
    _check_limit(limit)
    row = _row(s, job_id)
    items = []
    if row.status == JobStatus.COMPLETED.value:
        step = int((row.progress or {}).get("step") or 0)
        items.append({"object": "fine_tuning.job.checkpoint", "id": f"ftckpt-{row.job_id}", "created_at": _ts(row.end_time or row.updated_at),
                      "fine_tuned_model_checkpoint": row.custom_model_name, "fine_tuning_job_id": row.job_name, "step_number": step,
                      "metrics": {"step": float(step), "train_loss": row.training_loss, "valid_loss": row.validation_loss,
                                  "full_valid_loss": row.validation_loss}})
    items = _after(items, after, key=lambda c: c["id"])
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit,
            "first_id": items[0]["id"] if items else None, "last_id": items[min(limit, len(items)) - 1]["id"] if items else None}


def job_object(row: CustomizationJobRow) -> dict:
    hp = _hyperparameters(row)
    progress = row.progress or {}
    status = _status(row)
    method = OPENAI_TYPES.get(row.customization_type, "supervised")
    default = parse_hyperparameters({"method": hp.method}, family=model_family(row.base_model_id),
                                    customization=row.customization_type).learning_rate
    hyperparameters = {name: "auto" if key in hp.auto else value for name, key, value in (
        ("n_epochs", "epochCount", hp.epoch_count), ("batch_size", "batchSize", hp.batch_size),
        ("learning_rate_multiplier", "learningRate", hp.learning_rate / default))}  # "auto" until the job has chosen
    nested = {**hyperparameters, "beta": "auto" if "beta" in hp.auto else hp.beta} if method == "dpo" else hyperparameters
    eta = progress.get("etaSeconds")
    return {
        "object": "fine_tuning.job", "id": row.job_name, "model": row.base_model_id, "organization_id": ORGANIZATION,
        "created_at": _ts(row.created_at), "finished_at": _ts(row.end_time) if row.end_time else None,
        "status": status, "fine_tuned_model": row.custom_model_name if status == "succeeded" else None,
        "training_file": row.training_file_id or row.training_data_uri,
        "validation_file": row.validation_file_id or (row.validation_data_uris[0] if row.validation_data_uris else None),
        "hyperparameters": hyperparameters,
        "method": {"type": method, method: {"hyperparameters": nested}},
        "result_files": [], "seed": hp.seed, "integrations": [], "metadata": row.job_metadata,
        "trained_tokens": progress.get("tokensTrained") if status == "succeeded" else None,
        "estimated_finish": int(time.time() + eta) if status == "running" and isinstance(eta, (int, float)) else None,
        "error": _error(row) if status == "failed" else None,
        "user_provided_suffix": row.suffix,
    }


def _status(row: CustomizationJobRow) -> str:
    if row.status == JobStatus.COMPLETED.value:
        return "succeeded"
    if row.status == JobStatus.FAILED.value:
        return "failed"
    if row.status in (JobStatus.STOPPED.value, JobStatus.STOPPING.value):
        return "cancelled"
    phase = (row.progress or {}).get("phase")
    if phase == "training":
        return "running"
    if phase == "validating":
        return "validating_files"
    return "queued"


def _error(row: CustomizationJobRow) -> dict:
    validation = ((row.status_details or {}).get("validationDetails") or {}).get("status")
    bad_data = validation == StageStatus.FAILED.value
    return {"code": "invalid_training_file" if bad_data else "training_failed", "message": row.failure_message or "the job failed",
            "param": "training_file" if bad_data else None}


def _hyperparameters(row: CustomizationJobRow) -> Hyperparameters:
    """The job's hyperparameters, with what "auto" became once the job chose it."""
    chosen = {key: str(c["value"]) for key, c in (row.chosen_hyperparameters or {}).items() if c.get("value") is not None}
    try:
        return parse_hyperparameters({**(row.hyperparameters or {}), **chosen}, family=model_family(row.base_model_id),
                                     customization=row.customization_type)
    except InvalidInput:  # stored by an older version with other rules: show the defaults rather than fail the listing
        return Hyperparameters()


def _row(s: Services, job_id: str) -> CustomizationJobRow:
    try:
        row = s.jobs.get(job_id)
    except NotFound:
        raise NotFound(f"no fine-tuning job {job_id!r}: see GET /v1/fine_tuning/jobs", field="fine_tuning_job_id") from None
    if row.customization_type not in OPENAI_TYPES:
        raise NotFound(f"{job_id!r} is a {row.customization_type} job, which OpenAI's API does not describe: "
                       "see Bedrock's GetModelCustomizationJob", field="fine_tuning_job_id")
    return row


def _model_name(base: str, suffix: str | None, token: str) -> str:
    """ft-<base>[-<suffix>]-<token>, in a custom model name's alphabet (letters, digits, single - or _)."""
    def clean(text: str) -> str:
        return re.sub(r"[^0-9A-Za-z]+", "-", text).strip("-")
    base_part = clean(base.rsplit("/", 1)[-1])[:24].strip("-")
    suffix_part = clean(suffix or "")[: MAX_NAME - len(base_part) - len(token) - 5].strip("-")
    return "-".join(p for p in ("ft", base_part, suffix_part, token) if p)


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA:
        raise InvalidInput(f"metadata: at most {MAX_METADATA} pairs, got {len(metadata)}", field="metadata")
    for key, value in metadata.items():
        if not 1 <= len(key) <= 64 or len(value) > 512:
            raise InvalidInput(f"metadata: keys are 1-64 characters and values at most 512: {key!r}", field="metadata")


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be 1-{MAX_LIST}, got {limit}", field="limit")


def _after(items: list, after: str | None, *, key) -> list:
    if not after:
        return items
    keys = [key(i) for i in items]
    if after not in keys:
        raise InvalidInput(f"after: {after!r} is not in this listing", field="after")
    return items[keys.index(after) + 1:]


def _renamed(exc: InvalidInput | NotFound):
    """The job service's error with this API's names for the fields it names."""
    message, field = exc.message, exc.field
    if field == "hyperParameters":  # every bad key is in the message: the first one names the field
        first = re.search(r"hyperParameters\.\w+", message)
        field = first.group(0) if first else field
    for bedrock, openai in _FIELDS.items():
        message = message.replace(bedrock, openai)
    return type(exc)(message, field=_FIELDS.get(field or "", "hyperparameters" if field == "hyperParameters" else field))


def _ts(at: datetime) -> int:
    return int(at.timestamp())
