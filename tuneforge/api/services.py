"""The services the HTTP edge calls, built once at server start (no torch is imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.jobs.service import JobService
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.serving.deployments import DeploymentService
from tuneforge.serving.pool import WorkerPool
from tuneforge.serving.supervisor import Supervisor
from tuneforge.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    catalog: Catalog
    jobs: JobService
    registry: CustomModelRegistry
    pool: WorkerPool
    deployments: DeploymentService
    supervisor: Supervisor

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        sessions = open_database(settings.database_url)
        catalog = Catalog(settings, sessions)
        registry = CustomModelRegistry(settings, sessions)
        deployments = DeploymentService(settings, sessions, catalog, registry)
        return cls(
            settings, catalog, JobService(settings, sessions, catalog), registry, WorkerPool(), deployments,
            Supervisor(deployments, max_queue=settings.max_queue).start(),
        )

    def close(self) -> None:
        self.supervisor.close()
        self.pool.close()


def services(request: Request) -> Services:
    return request.app.state.services
