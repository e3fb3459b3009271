"""The services the HTTP edge calls, built once at server start (no torch is imported here)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from tuneforge.api.metrics import ApiMetrics
from tuneforge.batch.links import BatchLinks
from tuneforge.batch.service import BatchService
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database
from tuneforge.evaluation.service import EvaluationService
from tuneforge.files.service import FileService
from tuneforge.ids import ArnType
from tuneforge.inference.spec import Capacity
from tuneforge.jobs.service import JobService
from tuneforge.knowledge.rerank import Reranker
from tuneforge.knowledge.retrieve import Retriever
from tuneforge.knowledge.service import KnowledgeBaseService
from tuneforge.models.specs import embedding_spec, reranker_spec
from tuneforge.processes.reconciler import Reconciler
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.registry.tags import ResourceTags
from tuneforge.security.audit import AuditLog
from tuneforge.security.keys import AccessKeys
from tuneforge.serving.custom_deployments import CustomModelDeployments
from tuneforge.serving.deployments import DeploymentService
from tuneforge.serving.pool import WorkerPool
from tuneforge.serving.resolve import Resolver
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
    custom_deployments: CustomModelDeployments
    supervisor: Supervisor
    knowledge: KnowledgeBaseService
    retriever: Retriever
    reranker: Reranker
    access_keys: AccessKeys
    audit: AuditLog
    tags: ResourceTags
    metrics: ApiMetrics
    resolver: Resolver
    files: FileService
    batch: BatchService
    batch_links: BatchLinks
    evaluations: EvaluationService
    reconciler: Reconciler

    @classmethod
    def build(cls, settings: Settings) -> "Services":
        sessions = open_database(settings.database_url)
        catalog = Catalog(settings, sessions)
        jobs = JobService(settings, sessions, catalog)
        registry = CustomModelRegistry(settings, sessions)
        deployments = DeploymentService(settings, sessions, catalog, registry)
        capacity = Capacity(max_batch_size=settings.max_batch_size, max_queue=settings.max_queue, engine=settings.serving_engine,
                            python=(settings.vllm_python or None) if settings.serving_engine == "vllm" else None)
        # an encrypted custom model is loaded from a decrypted copy, removed once its worker has read it
        pool = WorkerPool(capacity=capacity, release=registry.release)
        custom_deployments = CustomModelDeployments(settings, sessions, deployments.models)
        evaluations = EvaluationService(settings, sessions, deployments.models)
        batch = BatchService(settings, sessions, deployments.models, custom_deployments)  # reconciles: restarts dead jobs
        supervisor = Supervisor(deployments, capacity=capacity).start()
        knowledge = KnowledgeBaseService(settings, sessions, catalog)
        # rerankers: one worker per model in the pool; the spec (a catalog lookup) first, so that a model that is
        # no reranker is refused naming the request's field before anything loads
        def reranker_for(model: str, field: str):
            spec = reranker_spec(catalog, model, field=field)
            return pool.get(f"reranker:{spec.model_id}", lambda: spec).rerank

        reranker = Reranker(scorer_for=reranker_for)
        # query embeddings: the knowledge base's embedding model, one worker per model in the pool
        retriever = Retriever(knowledge, embedder_for=lambda model_id: pool.get(
            f"embedding:{model_id}", lambda: embedding_spec(catalog, model_id)).embed, reranker=reranker)
        tags = ResourceTags(sessions, {
            ArnType.CUSTOMIZATION_JOB: lambda arn: jobs.get(arn).job_arn,
            ArnType.CUSTOM_MODEL: lambda arn: registry.get(arn).model_arn,
            ArnType.PROVISIONED_MODEL: lambda arn: deployments.get(arn).provisioned_model_arn,
            ArnType.CUSTOM_MODEL_DEPLOYMENT: lambda arn: custom_deployments.get(arn).deployment_arn,
            ArnType.INVOCATION_JOB: lambda arn: batch.get(arn).job_arn,
            ArnType.EVALUATION_JOB: lambda arn: evaluations.get(arn).job_arn,
        })
        metrics = ApiMetrics(jobs.count_by_status, lambda: {
            **{key: w.pending() for key, w in pool.loaded().items()},
            **{f"provisioned:{d}:{i}": w.pending() for d in supervisor.deployment_ids() for i, w in enumerate(supervisor.workers(d))},
        })
        return cls(settings, catalog, jobs, registry, pool, deployments, custom_deployments, supervisor, knowledge, retriever, reranker,
                   AccessKeys(settings, sessions), AuditLog(sessions), tags, metrics,
                   Resolver(deployments.models, pool, supervisor, custom_deployments), FileService(settings, sessions), batch,
                   BatchLinks(sessions), evaluations,
                   Reconciler([jobs.reconcile, knowledge.reconcile, batch.reconcile, evaluations.reconcile]).start())

    def close(self) -> None:
        self.reconciler.close()
        self.supervisor.close()
        self.retriever.close()
        self.pool.close()


def services(request: Request) -> Services:
    return request.app.state.services
