"""Provisioned models and on-demand custom model deployments in Bedrock's response shapes (Get/List...); API and CLI
`--json`."""

from __future__ import annotations

from tuneforge.db.tables import CustomModelDeploymentRow, ProvisionedModelRow
from tuneforge.wire.timestamps import timestamp


def deployment_summary(row: ProvisionedModelRow) -> dict:
    data = {
        "provisionedModelName": row.provisioned_model_name,
        "provisionedModelArn": row.provisioned_model_arn,
        "modelArn": row.model_arn,
        "desiredModelArn": row.desired_model_arn,
        "foundationModelArn": row.foundation_model_arn,
        "modelUnits": row.model_units,
        "desiredModelUnits": row.desired_model_units,
        "status": row.status,
        "commitmentDuration": row.commitment_duration,
        "commitmentExpirationTime": timestamp(row.commitment_expiration_time),
        "creationTime": timestamp(row.created_at),
        "lastModifiedTime": timestamp(row.updated_at),
    }
    return {k: v for k, v in data.items() if v is not None}


def deployment_detail(row: ProvisionedModelRow) -> dict:
    data = deployment_summary(row)
    if row.failure_message:
        data["failureMessage"] = row.failure_message
    return data


def custom_deployment_summary(row: CustomModelDeploymentRow) -> dict:
    data = {
        "customModelDeploymentArn": row.deployment_arn,
        "customModelDeploymentName": row.deployment_name,
        "modelArn": row.model_arn,
        "createdAt": timestamp(row.created_at),
        "status": row.status,
        "lastUpdatedAt": timestamp(row.updated_at),
        "failureMessage": row.failure_message,
    }
    return {k: v for k, v in data.items() if v is not None}


def custom_deployment_detail(row: CustomModelDeploymentRow) -> dict:
    data = {
        "customModelDeploymentArn": row.deployment_arn,
        "modelDeploymentName": row.deployment_name,
        "modelArn": row.model_arn,
        "createdAt": timestamp(row.created_at),
        "status": row.status,
        "description": row.description,
        "failureMessage": row.failure_message,
        "lastUpdatedAt": timestamp(row.updated_at),
    }
    if row.update_status:
        data["updateDetails"] = {"modelArn": row.update_model_arn, "updateStatus": row.update_status}
    return {k: v for k, v in data.items() if v is not None}
