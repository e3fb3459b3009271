"""OpenAI's /v1/batches over tuneforge's batch inference: one model invocation job per batch.

Create reads the uploaded batch file (purpose "batch", its lines checked on upload), turns each chat request's body
into a Converse record `{"recordId": custom_id, "modelInput": ...}` for a Converse model invocation job, and links
the two (tuneforge.batch.links). A line whose body is not a valid chat request is not sent: it fails alone, with the
reason, in the batch's error file. When the job has ended, the first read writes the output file (one
`{"id", "custom_id", "response": {"status_code", "request_id", "body": <chat.completion>}, "error"}` per answered
request) and the error file, as files of purpose "batch_output".

    validating <- Submitted, Validating     in_progress <- Scheduled, InProgress     cancelling <- Stopping
    completed  <- Completed, PartiallyCompleted (once the result files are written; "finalizing" until then)
    failed <- Failed    cancelled <- Stopped    expired <- Expired
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import ValidationError

from tuneforge import storage
from tuneforge.api.openai.protocol import FINISH_REASON, BatchRequest, ChatCompletionRequest
from tuneforge.api.services import Services
from tuneforge.batch.links import new_batch_id
from tuneforge.batch.records import output_folder
from tuneforge.batch.request import BatchJobRequest, InvocationType
from tuneforge.batch.states import BatchStatus
from tuneforge.db.tables import BatchJobRow, OpenAIBatchRow
from tuneforge.errors import InvalidInput
from tuneforge.files.checks import Purpose
from tuneforge.inference.params import StopReason

ENDPOINTS = ("/v1/chat/completions",)
ROLE = "arn:aws:iam::000000000000:role/tuneforge-openai-batch"  # Bedrock's jobs name a role; none is assumed here
REQUESTS = "requests.jsonl"
MAX_LIST = 100
_CONVERSE_REASON = {"end_turn": StopReason.END, "stop_sequence": StopReason.STOP_SEQUENCE, "max_tokens": StopReason.LENGTH}
_STATUS = {BatchStatus.SUBMITTED: "validating", BatchStatus.VALIDATING: "validating", BatchStatus.SCHEDULED: "in_progress",
           BatchStatus.IN_PROGRESS: "in_progress", BatchStatus.FAILED: "failed", BatchStatus.STOPPING: "cancelling",
           BatchStatus.STOPPED: "cancelled", BatchStatus.EXPIRED: "expired"}
_ENDED = {BatchStatus.COMPLETED, BatchStatus.PARTIALLY_COMPLETED, BatchStatus.FAILED, BatchStatus.STOPPED, BatchStatus.EXPIRED}


def create(s: Services, request: BatchRequest) -> dict:
    input_file_id, endpoint, metadata = request.input_file_id, request.endpoint, request.metadata
    if endpoint not in ENDPOINTS:
        raise InvalidInput(f"endpoint: tuneforge's batches run {', '.join(ENDPOINTS)}, got {endpoint!r}", field="endpoint")
    if request.completion_window != "24h":
        raise InvalidInput(f"completion_window: '24h' is the only window, got {request.completion_window!r}", field="completion_window")
    if metadata is not None and len(metadata) > 16:
        raise InvalidInput(f"metadata: at most 16 pairs, got {len(metadata)}", field="metadata")
    source = s.files.require(input_file_id, Purpose.BATCH, field="input_file_id")
    records, refused, model = _records(source.uri, endpoint)
    if not records:
        raise InvalidInput(f"input_file_id: no request of {input_file_id} can be sent: " +
                           "; ".join(f"{cid}: {why}" for cid, why in list(refused.items())[:5]), field="input_file_id")
    batch_id = new_batch_id()
    folder = s.settings.home / "openai-batches" / batch_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REQUESTS).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    job = s.batch.create(BatchJobRequest(job_name=batch_id.replace("_", "-"), role_arn=ROLE, model_id=model,
                                         input_uri=str(folder / REQUESTS), output_uri=str(folder / "out"),
                                         invocation_type=InvocationType.CONVERSE.value))
    return batch_object(s, s.batch_links.add(batch_id=batch_id, job_id=job.job_id, endpoint=endpoint, input_file_id=input_file_id,
                                             refused=refused, metadata=metadata), job)


def get(s: Services, batch_id: str) -> dict:
    link = s.batch_links.get(batch_id)
    return batch_object(s, link, s.batch.get(link.job_id))


def cancel(s: Services, batch_id: str) -> dict:
    link = s.batch_links.get(batch_id)
    return batch_object(s, link, s.batch.stop(link.job_id, wait=False))


def list_batches(s: Services, *, after: str | None, limit: int) -> dict:
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be 1-{MAX_LIST}, got {limit}", field="limit")
    links = s.batch_links.list()
    if after:
        ids = [link.batch_id for link in links]
        if after not in ids:
            raise InvalidInput(f"after: no batch {after!r} in this listing", field="after")
        links = links[ids.index(after) + 1:]
    data = [batch_object(s, link, s.batch.get(link.job_id)) for link in links[:limit]]
    return {"object": "list", "data": data, "has_more": len(links) > limit,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def batch_object(s: Services, link: OpenAIBatchRow, job: BatchJobRow) -> dict:
    status = BatchStatus(job.status)
    if status in _ENDED and link.output_file_id is None:
        link = _finalize(s, link, job)
    counts = job.counts or {}
    refused = len(link.refused or {})
    failed = counts.get("errorRecordCount", 0) + refused
    completed = counts.get("successRecordCount", 0)
    total = (counts.get("totalRecordCount") or 0) + refused
    openai_status = ("completed" if link.output_file_id else "finalizing") if status in (BatchStatus.COMPLETED, BatchStatus.PARTIALLY_COMPLETED) \
        else _STATUS[status]
    ended = _ts(job.end_time) if job.end_time else None
    return {
        "id": link.batch_id, "object": "batch", "endpoint": link.endpoint, "input_file_id": link.input_file_id,
        "completion_window": "24h", "status": openai_status, "output_file_id": link.output_file_id,
        "error_file_id": link.error_file_id, "created_at": _ts(link.created_at), "in_progress_at": _ts(job.created_at),
        "expires_at": _ts(job.expires_at), "finalizing_at": ended if openai_status in ("finalizing", "completed") else None,
        "completed_at": ended if openai_status == "completed" else None, "failed_at": ended if openai_status == "failed" else None,
        "expired_at": ended if openai_status == "expired" else None,
        "cancelling_at": _ts(job.updated_at) if openai_status in ("cancelling", "cancelled") else None,
        "cancelled_at": ended if openai_status == "cancelled" else None,
        "request_counts": {"total": total, "completed": completed, "failed": failed},
        "errors": {"object": "list", "data": [{"code": "batch_failed", "message": job.message, "param": None, "line": None}]}
        if openai_status == "failed" and job.message else None,
        "metadata": link.batch_metadata, "model": job.model_id,
    }


def _records(uri: str, endpoint: str) -> tuple[list[dict], dict[str, str], str]:
    """The Converse records of the sendable lines, the refused lines' reasons by custom_id, and the one model."""
    records: list[dict] = []
    refused: dict[str, str] = {}
    model: str | None = None
    with open(uri, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            request = json.loads(line)  # the upload checked every line's shape (tuneforge.files.checks)
            custom_id = request["custom_id"]
            if request["url"] != endpoint:
                raise InvalidInput(f"input_file_id: line {number} asks for {request['url']}, the batch runs {endpoint}: one "
                                   "endpoint per batch", field="input_file_id")
            try:
                chat = ChatCompletionRequest.model_validate(request["body"])
                generation = chat.to_generation()
            except ValidationError as exc:
                first = exc.errors()[0]
                refused[custom_id] = f"body.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
                continue
            except InvalidInput as exc:
                refused[custom_id] = f"body.{exc.message}"
                continue
            if chat.stream:
                refused[custom_id] = "body.stream: a batch request is answered whole, not streamed"
                continue
            if model is None:
                model = chat.model
            elif chat.model != model:
                raise InvalidInput(f"input_file_id: line {number} asks for model {chat.model!r}, line 1's for {model!r}: one "
                                   "model per batch", field="input_file_id")
            params = generation.params
            system = [{"text": m.content} for m in generation.messages if m.role == "system"]
            records.append({"recordId": custom_id, "modelInput": {
                "messages": [{"role": m.role, "content": [{"text": m.content}]} for m in generation.messages if m.role != "system"],
                **({"system": system} if system else {}),
                "inferenceConfig": {"maxTokens": params.max_tokens, "temperature": params.temperature, "topP": params.top_p,
                                    **({"stopSequences": list(params.stop)} if params.stop else {})},
            }})
    return records, refused, model or ""


def _finalize(s: Services, link: OpenAIBatchRow, job: BatchJobRow) -> OpenAIBatchRow:
    """Write the result files from the job's output (what finished, if it was stopped or failed) and link them."""
    out_uri = storage.join(output_folder(job.output_config["s3Uri"], job.job_id), REQUESTS + ".out")
    answered, errors = [], []
    if storage.exists(out_uri):
        for line in storage.read_bytes(out_uri).decode("utf-8").splitlines():
            record = json.loads(line)
            custom_id = record["recordId"]
            if "modelOutput" in record:
                answered.append(_response_line(custom_id, record["modelOutput"], job))
            else:
                error = record.get("error") or {}
                errors.append(_error_line(custom_id, str(error.get("errorCode", "error")), error.get("errorMessage", "")))
    errors += [_error_line(custom_id, "invalid_request", why) for custom_id, why in (link.refused or {}).items()]
    output = s.files.store("".join(json.dumps(a) + "\n" for a in answered).encode(), filename=f"{link.batch_id}_output.jsonl",
                           purpose=Purpose.BATCH_OUTPUT)
    error_file = s.files.store("".join(json.dumps(e) + "\n" for e in errors).encode(), filename=f"{link.batch_id}_error.jsonl",
                               purpose=Purpose.BATCH_OUTPUT) if errors else None
    if not s.batch_links.set_results(link.batch_id, output.file_id, error_file.file_id if error_file else None):
        s.files.delete(output.file_id)  # another reader finalized it first: keep its files
        if error_file is not None:
            s.files.delete(error_file.file_id)
    return s.batch_links.get(link.batch_id)


def _response_line(custom_id: str, output: dict, job: BatchJobRow) -> dict:
    usage = output.get("usage", {})
    text = "".join(block.get("text", "") for block in output["output"]["message"]["content"])
    reason = _CONVERSE_REASON.get(output.get("stopReason"), StopReason.END)
    completion = {
        "id": f"chatcmpl-{job.job_id}-{custom_id}", "object": "chat.completion", "created": _ts(job.end_time or job.updated_at),
        "model": job.model_id,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": FINISH_REASON[reason], "logprobs": None}],
        "usage": {"prompt_tokens": usage.get("inputTokens", 0), "completion_tokens": usage.get("outputTokens", 0),
                  "total_tokens": usage.get("totalTokens", 0)},
    }
    return {"id": f"batch_req_{job.job_id}_{custom_id}", "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": f"{job.job_id}-{custom_id}", "body": completion}, "error": None}


def _error_line(custom_id: str, code: str, message: str) -> dict:
    return {"id": f"batch_req_{custom_id}", "custom_id": custom_id, "response": None, "error": {"code": code, "message": message}}


def _ts(at: datetime) -> int:
    return int(at.timestamp())
