"""Batch inference in Bedrock's shapes: GetModelInvocationJob / ListModelInvocationJobs replies built from rows, and
the lines of a job's `.out` files (`{"recordId", "modelInput", "modelOutput"}` or `{..., "error": {"errorCode",
"errorMessage"}}`, errorCode being the HTTP status InvokeModel would have answered).

Used by the HTTP API, the CLI's `--json`, and the batch job's process, whose records are these shapes in files.
"""

from __future__ import annotations

from typing import Any

from tuneforge.db.tables import BatchJobRow
from tuneforge.errors import TuneforgeError
from tuneforge.wire.errors import aws
from tuneforge.wire.timestamps import timestamp


def job_detail(row: BatchJobRow) -> dict:
    counts = row.counts or {}
    return _drop_none({
        "jobArn": row.job_arn,
        "jobName": row.job_name,
        "modelId": row.model_id,
        "clientRequestToken": row.client_request_token,
        "roleArn": row.role_arn,
        "status": row.status,
        "message": row.message,
        "submitTime": timestamp(row.created_at),
        "lastModifiedTime": timestamp(row.updated_at),
        "endTime": timestamp(row.end_time),
        "inputDataConfig": {"s3InputDataConfig": row.input_config},
        "outputDataConfig": {"s3OutputDataConfig": row.output_config},
        "vpcConfig": row.vpc_config,
        "timeoutDurationInHours": row.timeout_hours,
        "jobExpirationTime": timestamp(row.expires_at),
        "modelInvocationType": row.invocation_type,
        "totalRecordCount": counts.get("totalRecordCount"),
        "processedRecordCount": counts.get("processedRecordCount"),
        "successRecordCount": counts.get("successRecordCount"),
        "errorRecordCount": counts.get("errorRecordCount"),
    })


job_summary = job_detail  # ModelInvocationJobSummary has exactly GetModelInvocationJob's members


def record_output(record_id: str, model_input: Any, model_output: dict) -> dict:
    return {"recordId": record_id, "modelInput": model_input, "modelOutput": model_output}


def record_error(record_id: str | None, model_input: Any, exc: TuneforgeError, where: str) -> dict:
    """`where` (file and line) leads the message, so a reader of the .out file finds the input line."""
    line = {"recordId": record_id} if record_id is not None else {}  # an unreadable line has none to echo
    return {**line, "modelInput": model_input,
            "error": {"errorCode": aws("bedrock-runtime", exc).status, "errorMessage": f"{where}: {exc.message}"}}


def _drop_none(data: dict) -> dict:
    return {k: v for k, v in data.items() if v is not None}
