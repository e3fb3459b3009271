"""The services the HTTP edge calls, built once at server start (no torch is imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from tuneforge.api.metrics import ApiMetrics
from tuneforge.auth.audit import AuditLog
from tuneforge.auth.keys import AccessKeys
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.jobs.service import JobService
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.registry.tags import ResourceTags
from tuneforge.serving.pool import WorkerPool
from tuneforge.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    catalog: Catalog
    jobs: JobService
    registry: CustomModelRegistry
    pool: WorkerPool
    access_keys: AccessKeys
    audit: AuditLog
    tags: ResourceTags
    metrics: ApiMetrics

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        sessions = open_database(settings.database_url)
        catalog = Catalog(settings, sessions)
        jobs = JobService(settings, sessions, catalog)
        registry = CustomModelRegistry(settings, sessions)
        pool = WorkerPool()
        tags = ResourceTags(sessions, {
            ":model-customization-job/": lambda arn: jobs.get(arn).job_arn,
            ":custom-model/": lambda arn: registry.get(arn).model_arn,
        })
        metrics = ApiMetrics(jobs.count_by_status, lambda: {key: w.pending() for key, w in pool.loaded().items()})
        return cls(settings, catalog, jobs, registry, pool, AccessKeys(settings, sessions), AuditLog(sessions), tags, metrics)

    def close(self) -> None:
        self.pool.close()


def services(request: Request) -> Services:
    return request.app.state.services
