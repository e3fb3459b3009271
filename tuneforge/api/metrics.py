"""Prometheus metrics for GET /metrics: requests, latency, tokens, jobs by status, model-worker queue depth.

Each app has its own CollectorRegistry (no process-global state), rendered in the text exposition format.
Latency is measured to the response's start: for a stream, that is the time to its first event.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tuneforge.inference.params import GenerationResult

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _StateCollector(Collector):
    """Gauges read at scrape time, so they are never stale."""

    def __init__(self, jobs_by_status: Callable[[], dict[str, int]], queue_depths: Callable[[], dict[str, int]]) -> None:
        self.jobs_by_status = jobs_by_status
        self.queue_depths = queue_depths

    def collect(self):
        jobs = GaugeMetricFamily("tuneforge_customization_jobs", "Model customization jobs by status.", labels=["status"])
        for status, count in sorted(self.jobs_by_status().items()):
            jobs.add_metric([status], count)
        yield jobs
        depth = GaugeMetricFamily("tuneforge_worker_queue_depth", "Requests in flight or queued per model worker.", labels=["worker"])
        for worker, count in sorted(self.queue_depths().items()):
            depth.add_metric([worker], count)
        yield depth


class ApiMetrics:
    def __init__(self, jobs_by_status: Callable[[], dict[str, int]], queue_depths: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tuneforge_requests", "API requests by service, operation and HTTP status.",
                                ["service", "operation", "status"], registry=self.registry)
        self.latency = Histogram("tuneforge_request_duration_seconds", "Time to the start of the response.",
                                 ["service", "operation"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.tokens = Counter("tuneforge_tokens", "Tokens read (input) and generated (output), by model.",
                              ["direction", "model"], registry=self.registry)
        self.registry.register(_StateCollector(jobs_by_status, queue_depths))

    def observe(self, service: str, operation: str, status: int, seconds: float) -> None:
        self.requests.labels(service, operation, str(status)).inc()
        self.latency.labels(service, operation).observe(seconds)

    def count_tokens(self, model: str, result: GenerationResult) -> None:
        self.tokens.labels("input", model).inc(result.prompt_tokens)
        self.tokens.labels("output", model).inc(result.completion_tokens)

    def count_input_tokens(self, model: str, tokens: int) -> None:
        """Embeddings: text read, nothing generated."""
        self.tokens.labels("input", model).inc(tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)
