"""Makes provisioned throughput records true, inside `tuneforge serve`: worker processes per model unit.

Every `poll_seconds` the supervisor reads the provisioned models (the CLI and the API only write records) and:
- Creating / Updating: loads the desired model on the desired number of workers, one after the other (loading
  them at once would hold several half-built copies in memory), runs a one-token health generation on each,
  then swaps them in and reports InService. During an update the old workers keep serving until the swap. A
  change of units alone adds or removes workers of the same model.
- InService: a worker that died (crash, OOM kill) is replaced; requests it was answering fail with a retryable
  ModelFailure (tuneforge.serving.client), new requests go to the live workers. After a server restart,
  InService records are loaded again; until then their requests get ModelNotReady (429, retried by boto3).
- Deleted records: their workers are closed.
Requests go to the live worker with the fewest requests in flight. One `tuneforge serve` per data directory owns
the workers of its provisioned models.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from tuneforge.db.tables import ProvisionedModelRow
from tuneforge.errors import ModelNotReady
from tuneforge.inference.params import GenerationRequest, SamplingParams
from tuneforge.inference.spec import Capacity, WorkerSpec
from tuneforge.models.resolve import LOADABLE
from tuneforge.serving.client import WorkerProcess
from tuneforge.serving.deployments import SETTLING, DeploymentService, DeploymentStatus

log = logging.getLogger(__name__)
HEALTH_REQUEST = GenerationRequest(prompt="Hello", params=SamplingParams(temperature=0.0, max_tokens=1))


@dataclass
class _Group:
    """The workers serving one provisioned model, all with the same model."""

    model_arn: str
    workers: list[WorkerProcess] = field(default_factory=list)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


class Supervisor:
    def __init__(
        self, deployments: DeploymentService, *, poll_seconds: float = 1.0, capacity: Capacity | None = None,
        spawn: Callable[[WorkerSpec], WorkerProcess] = WorkerProcess,
    ) -> None:
        self.deployments = deployments
        self.poll_seconds = poll_seconds
        self.capacity = capacity
        self.spawn = spawn
        self._lock = threading.Lock()
        self._groups: dict[str, _Group] = {}
        self._busy: set[str] = set()  # deployments with a load/scale thread running
        self._healing: set[tuple[str, int]] = set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deployment-supervisor", daemon=True)

    def start(self) -> "Supervisor":
        self._thread.start()
        return self

    # ---- requests -------------------------------------------------------------------------------
    def route(self, row: ProvisionedModelRow) -> WorkerProcess:
        with self._lock:
            group = self._groups.get(row.provisioned_model_id)
            live = [w for w in group.workers if w.alive()] if group else []
        if not live:
            state = "being created" if row.status == DeploymentStatus.CREATING.value else "loading or restarting its workers"
            if row.status == DeploymentStatus.FAILED.value:
                state = f"Failed ({row.failure_message})"
            raise ModelNotReady(f"provisioned model {row.provisioned_model_name!r} is {state}; retry shortly", field="modelId")
        return min(live, key=lambda w: w.pending())

    def deployment_ids(self) -> list[str]:
        with self._lock:
            return list(self._groups)

    def workers(self, deployment_id: str) -> list[WorkerProcess]:
        with self._lock:
            group = self._groups.get(deployment_id)
            return list(group.workers) if group else []

    # ---- reconciling ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                self.tick()
            except Exception:  # a database hiccup must not end supervision
                log.exception("deployment supervisor tick failed")
            self._closed.wait(self.poll_seconds)

    def tick(self) -> None:
        rows = {r.provisioned_model_id: r for r in self.deployments.all()}
        with self._lock:
            gone = [i for i in self._groups if i not in rows and i not in self._busy]
            groups = [self._groups.pop(i) for i in gone]
        for group in groups:
            group.close()
        for deployment_id, row in rows.items():
            with self._lock:
                if deployment_id in self._busy or self._closed.is_set():
                    continue
                group = self._groups.get(deployment_id)
                settle = row.status in SETTLING or (
                    row.status == DeploymentStatus.IN_SERVICE.value and (group is None or group.model_arn != row.model_arn)
                )
                if settle:
                    self._busy.add(deployment_id)
            if settle:
                threading.Thread(target=self._settle, args=(row,), name=f"settle-{deployment_id}", daemon=True).start()
            elif row.status == DeploymentStatus.IN_SERVICE.value and group is not None:
                self._heal(deployment_id, group)

    def _settle(self, row: ProvisionedModelRow) -> None:
        deployment_id = row.provisioned_model_id
        # InService without workers (a server restart): load what the record says is serving
        model_arn, units = (row.desired_model_arn, row.desired_model_units) if row.status in SETTLING else (row.model_arn, row.model_units)
        started: list[WorkerProcess] = []
        try:
            with self._lock:
                group = self._groups.get(deployment_id)
            if group is not None and group.model_arn == model_arn:  # same model: scale
                while len(group.workers) + len(started) < units:
                    started.append(self._start(model_arn))
                with self._lock:
                    surplus = group.workers[units:]
                    group.workers = group.workers[:units] + started
                for worker in surplus:
                    worker.close()
            else:
                while len(started) < units:
                    started.append(self._start(model_arn))
                with self._lock:
                    if self._closed.is_set():
                        raise RuntimeError("the server is shutting down")
                    old = self._groups.get(deployment_id)
                    self._groups[deployment_id] = _Group(model_arn, started)
                if old is not None:
                    old.close()  # after the swap: requests in flight on it finish first (close waits)
            started = []
            self.deployments.settled(deployment_id, model_arn=model_arn, units=units)
        except Exception as exc:  # reported on the record: the user sees why
            log.warning("provisioned model %s: %s", row.provisioned_model_name, exc)
            self.deployments.failed(deployment_id, _describe(exc))
        finally:
            for worker in started:
                worker.close()
            with self._lock:
                self._busy.discard(deployment_id)

    def _start(self, model_arn: str) -> WorkerProcess:
        models = self.deployments.models
        spec = models.worker_spec(models.resolve(model_arn, kinds=LOADABLE))
        if self.capacity is not None:
            spec = self.capacity.apply(spec)
        try:
            worker = self.spawn(spec)
        finally:
            models.registry.release(spec)  # an encrypted model's plaintext copy: loaded or not, remove it
        try:
            worker.generate(HEALTH_REQUEST)
        except BaseException:
            worker.close()
            raise
        return worker

    def _heal(self, deployment_id: str, group: _Group) -> None:
        for index, worker in enumerate(list(group.workers)):
            key = (deployment_id, index)
            with self._lock:
                if worker.alive() or key in self._healing:
                    continue
                self._healing.add(key)
            threading.Thread(target=self._replace, args=(deployment_id, group, index, worker), daemon=True).start()

    def _replace(self, deployment_id: str, group: _Group, index: int, dead: WorkerProcess) -> None:
        try:
            log.warning("a worker of provisioned model %s died; starting a new one", deployment_id)
            fresh = self._start(group.model_arn)
            with self._lock:
                if self._groups.get(deployment_id) is group and index < len(group.workers) and group.workers[index] is dead:
                    group.workers[index] = fresh
                    fresh = None
            if fresh is not None:  # the group changed meanwhile (update, delete)
                fresh.close()
        except Exception:
            log.exception("could not restart a worker of provisioned model %s; will try again", deployment_id)
        finally:
            with self._lock:
                self._healing.discard((deployment_id, index))

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            groups, self._groups = list(self._groups.values()), {}
        for group in groups:
            group.close()


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"the model could not be loaded and health-checked: {message}"
