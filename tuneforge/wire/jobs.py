"""Jobs and custom models in Bedrock's response shapes (GetModelCustomizationJob, GetCustomModel, ...).

Used by the HTTP API and by the CLI's `--json`, so scripts see one format everywhere.
"""

from __future__ import annotations

from datetime import datetime

from tuneforge.db.tables import CustomizationJobRow, CustomModelRow
from tuneforge.wire.timestamps import timestamp


def _details(details: dict) -> dict:
    return {
        stage: {"status": d["status"], "creationTime": _iso(d["creationTime"]), "lastModifiedTime": _iso(d["lastModifiedTime"])}
        for stage, d in details.items()
    }


def _iso(value: str) -> str:
    return timestamp(datetime.fromisoformat(value))


def _drop_none(data: dict) -> dict:
    return {k: v for k, v in data.items() if v is not None}


def job_detail(row: CustomizationJobRow) -> dict:
    return _drop_none({
        "jobArn": row.job_arn,
        "jobName": row.job_name,
        "outputModelName": row.custom_model_name,
        "outputModelArn": row.output_model_arn,
        "clientRequestToken": row.client_request_token,
        "roleArn": row.role_arn,
        "status": row.status,
        "statusDetails": _details(row.status_details),
        "failureMessage": row.failure_message,
        "creationTime": timestamp(row.created_at),
        "lastModifiedTime": timestamp(row.updated_at),
        "endTime": timestamp(row.end_time),
        "baseModelArn": row.base_model_arn,
        "hyperParameters": row.hyperparameters,
        "trainingDataConfig": {"s3Uri": row.training_data_uri},
        "validationDataConfig": {"validators": [{"s3Uri": uri} for uri in row.validation_data_uris]},
        "outputDataConfig": {"s3Uri": row.output_uri},
        "customizationType": row.customization_type,
        "outputModelKmsKeyArn": row.kms_key_id,
        "trainingMetrics": {"trainingLoss": row.training_loss} if row.training_loss is not None else None,
        "validationMetrics": [{"validationLoss": row.validation_loss}] if row.validation_loss is not None else None,
    })


def job_summary(row: CustomizationJobRow) -> dict:
    return _drop_none({
        "jobArn": row.job_arn,
        "baseModelArn": row.base_model_arn,
        "jobName": row.job_name,
        "status": row.status,
        "statusDetails": _details(row.status_details),
        "creationTime": timestamp(row.created_at),
        "lastModifiedTime": timestamp(row.updated_at),
        "endTime": timestamp(row.end_time),
        "customModelArn": row.output_model_arn,
        "customModelName": row.custom_model_name,
        "customizationType": row.customization_type,
    })


def model_detail(row: CustomModelRow) -> dict:
    return _drop_none({
        "modelArn": row.model_arn,
        "modelName": row.model_name,
        "jobName": row.job_name,
        "jobArn": row.job_arn,
        "baseModelArn": row.base_model_arn,
        "customizationType": row.customization_type,
        "modelKmsKeyArn": row.kms_key_id,
        "hyperParameters": row.hyperparameters,
        "trainingDataConfig": {"s3Uri": row.training_data_uri},
        "validationDataConfig": {"validators": [{"s3Uri": uri} for uri in row.validation_data_uris]},
        "outputDataConfig": {"s3Uri": row.output_uri},
        "trainingMetrics": {"trainingLoss": row.training_loss} if row.training_loss is not None else None,
        "validationMetrics": [{"validationLoss": row.validation_loss}] if row.validation_loss is not None else None,
        "creationTime": timestamp(row.created_at),
        "modelStatus": row.model_status,
        "failureMessage": row.failure_message,
    })


def model_summary(row: CustomModelRow, base_model_name: str) -> dict:
    return _drop_none({
        "modelArn": row.model_arn,
        "modelName": row.model_name,
        "creationTime": timestamp(row.created_at),
        "baseModelArn": row.base_model_arn,
        "baseModelName": base_model_name,
        "customizationType": row.customization_type,
        "modelStatus": row.model_status,
    })
