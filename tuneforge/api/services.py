"""The services the HTTP edge calls, built once at server start (no torch is imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from tuneforge.catalog.service import Catalog, embedding_spec
from tuneforge.db import open_database
from tuneforge.jobs.service import JobService
from tuneforge.knowledge.retrieve import Retriever
from tuneforge.knowledge.service import KnowledgeBaseService
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
    knowledge: KnowledgeBaseService
    retriever: Retriever

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        sessions = open_database(settings.database_url)
        catalog = Catalog(settings, sessions)
        registry = CustomModelRegistry(settings, sessions)
        deployments = DeploymentService(settings, sessions, catalog, registry)
        pool = WorkerPool()
        knowledge = KnowledgeBaseService(settings, sessions, catalog)
        # query embeddings: the knowledge base's embedding model, one worker per model in the pool
        retriever = Retriever(knowledge, embedder_for=lambda model_id: pool.get(
            f"embedding:{model_id}", lambda: embedding_spec(catalog, model_id)).embed)
        return cls(
            settings, catalog, JobService(settings, sessions, catalog), registry, pool, deployments,
            Supervisor(deployments, max_queue=settings.max_queue).start(), knowledge, retriever,
        )

    def close(self) -> None:
        self.supervisor.close()
        self.retriever.close()
        self.pool.close()


def services(request: Request) -> Services:
    return request.app.state.services
