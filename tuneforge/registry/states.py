"""Custom model statuses (botocore's ModelStatus) and their lifecycle (`MODEL`).

    Creating ──> Active
        └──────> Failed

A model is registered Active once its job has written the whole artifact (tuneforge.registry.service.register),
so today no write moves a model between statuses; anything that does later goes through `MODEL`.
"""

from __future__ import annotations

from enum import StrEnum

from tuneforge.lifecycle import Lifecycle


class ModelStatus(StrEnum):
    ACTIVE = "Active"
    CREATING = "Creating"
    FAILED = "Failed"


MODEL = Lifecycle("custom model", {ModelStatus.CREATING: {ModelStatus.ACTIVE, ModelStatus.FAILED}}, field="modelIdentifier")
