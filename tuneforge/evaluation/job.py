"""The process that runs one evaluation job: `python -m tuneforge.evaluation.job JOB_ID`.

Started detached by EvaluationService. Reads top to bottom: read every dataset -> for each model, one worker
generates every prompt's response (all in flight together: its engine batches them) or the dataset's precomputed
responses are taken -> the deterministic metrics -> the evaluator model judges each response for each judge metric
(one worker, batched too) -> Bedrock's output layout, a summary table and an HTML report -> Completed.

    <outputDataConfig.s3Uri>/<jobName>/<jobId>/models/<model>/taskTypes/<taskType>/datasets/<dataset>/<jobId>_output.jsonl
        one line per record: {"automatedEvaluationResult": {"scores": [{"metricName", "result", "evaluatorDetails"?}]},
                              "inputRecord": {...}, "modelResponses": [{"response", "modelIdentifier"}]}
    <...>/<jobId>/summary.json   {"models": {model: {taskType: {metric: mean}}}, "records": n}
    <...>/<jobId>/report.html    self-contained: the table, a bar chart per metric, each prompt with every answer

SIGTERM (StopEvaluationJob) ends it Stopped between two generations; nothing is written for a stopped job.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import sys
from pathlib import Path
from statistics import mean

from sqlalchemy import update

from tuneforge import storage
from tuneforge.catalog.service import Catalog
from tuneforge.db import open_database, session_scope, utcnow
from tuneforge.db.tables import EvaluationJobRow
from tuneforge.errors import InvalidInput
from tuneforge.evaluation.metrics import DETERMINISTIC, deterministic, is_judged, judge_prompt, parse_judgement
from tuneforge.evaluation.request import EvaluationJobRequest, ModelConfig, Record, from_plan, read_dataset
from tuneforge.evaluation.states import EVALUATION_JOB, EvaluationStatus
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams
from tuneforge.inference.spec import Capacity
from tuneforge.models.resolve import ModelResolver
from tuneforge.processes.detached import Heartbeat, run_detached, this_process
from tuneforge.processes.local import LOG_NAME
from tuneforge.registry.service import CustomModelRegistry
from tuneforge.serving.client import WorkerProcess
from tuneforge.serving.loadable import loadable_model
from tuneforge.serving.custom_deployments import CustomModelDeployments
from tuneforge.settings import load_settings

JUDGE_MAX_TOKENS = 96


class EvaluationStopped(Exception):
    pass


class EvaluationProcess:
    def __init__(self, job_id: str) -> None:
        self.settings = load_settings()
        self.sessions = open_database(self.settings.database_url)
        self.job_id = job_id
        self.stop_requested = False
        self._heartbeat = Heartbeat(1.0)
        with self.sessions() as session:
            self.job = session.get(EvaluationJobRow, job_id)
        if self.job is None:
            raise SystemExit(f"no evaluation job {job_id}")
        self.work_dir = Path(self.job.work_dir)
        self.request: EvaluationJobRequest = from_plan(self.job.plan)
        catalog = Catalog(self.settings, self.sessions)
        self.models = ModelResolver(self.settings, self.sessions, catalog, CustomModelRegistry(self.settings, self.sessions))
        self.deployments = CustomModelDeployments(self.settings, self.sessions, self.models)

    def save(self, **values) -> None:
        with session_scope(self.sessions) as session:
            session.execute(update(EvaluationJobRow).where(EvaluationJobRow.job_id == self.job_id).values(updated_at=utcnow(), **values))

    def progress(self, **progress) -> None:
        if self._heartbeat.due():
            self.save(progress=progress, heartbeat_at=utcnow())
        if self.stop_requested:
            raise EvaluationStopped()

    def move(self, target: EvaluationStatus, **values) -> None:
        with session_scope(self.sessions) as session:
            EVALUATION_JOB.move(session, EvaluationJobRow.status, EvaluationJobRow.job_id == self.job_id, target,
                                name=self.job.job_name, updated_at=utcnow(), **values)

    # ---- the job --------------------------------------------------------------------------------
    def run(self) -> None:
        if self.job.status != EvaluationStatus.IN_PROGRESS.value:
            if self.job.status == EvaluationStatus.STOPPING.value:
                self.move(EvaluationStatus.STOPPED, end_time=utcnow())
            return
        me = this_process()
        self.save(pid=me.pid, pid_started_at=me.started_at, host=me.host, heartbeat_at=utcnow())
        request = self.request
        datasets = [read_dataset(t.dataset_uri, field_name=t.dataset_name) for t in request.tasks]
        # responses[model][task index] = [response per record]
        responses: dict[str, list[list[str]]] = {}
        for model in request.models:
            responses[model.identifier] = [
                [r.responses[model.identifier] for r in records] if model.precomputed else self.generate(model, records)
                for records in datasets]
        scores = self.score(datasets, responses)
        summary = self.write(datasets, responses, scores)
        self.move(EvaluationStatus.COMPLETED, end_time=utcnow(), summary=summary, progress={"phase": "done"})
        print(f"evaluation job {self.job_id} completed: {json.dumps(summary['models'])}", flush=True)

    def worker(self, identifier: str) -> tuple[WorkerProcess, int]:
        model = loadable_model(self.models, self.deployments, identifier)
        capacity = Capacity(max_batch_size=self.settings.max_batch_size, max_queue=self.settings.max_queue)
        spec = capacity.apply(self.models.worker_spec(model.ref))
        worker = WorkerProcess(spec)
        self.models.registry.release(spec)
        return worker, min(2 * spec.max_batch_size, spec.max_batch_size + spec.max_queue)

    def generate(self, model: ModelConfig, records: list[Record]) -> list[str | InvalidInput]:
        params = SamplingParams(temperature=model.temperature, top_p=model.top_p, max_tokens=model.max_tokens)
        requests = [GenerationRequest(messages=(Message("user", r.prompt),), params=params) for r in records]
        worker, window = self.worker(model.identifier)
        with worker:
            return asyncio.run(self._all(worker, requests, window, f"generating with {model.identifier}"))

    async def _all(self, worker: WorkerProcess, requests: list[GenerationRequest], window: int,
                   phase: str) -> list[str | InvalidInput]:
        gate = asyncio.Semaphore(window)
        done = 0

        async def one(request: GenerationRequest) -> str | InvalidInput:
            nonlocal done
            async with gate:
                if self.stop_requested:
                    raise EvaluationStopped()
                try:
                    text: str | InvalidInput = (await worker.agenerate(request)).text
                except InvalidInput as exc:  # this prompt alone (too long for the model, ...): its score says why
                    text = exc
            done += 1
            self.progress(phase=phase, done=done, total=len(requests))
            return text

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def score(self, datasets: list[list[Record]], responses: dict[str, list[list[str]]]) -> dict:
        """scores[model][task][record] = [{"metricName", "result", "evaluatorDetails"?}]"""
        request = self.request
        scores = {m: [[[] for _ in records] for records in datasets] for m in responses}
        judged: list[tuple[str, int, int, str, str]] = []  # (model, task, record, metric, prompt)
        for model, by_task in responses.items():
            for t, (task, records) in enumerate(zip(request.tasks, datasets, strict=True)):
                for i, record in enumerate(records):
                    if isinstance(by_task[t][i], InvalidInput):  # no response: every metric says why, none is scored
                        scores[model][t][i] = [{"metricName": m, "result": None, "error": by_task[t][i].message}
                                               for m in task.metric_names]
                        continue
                    for metric in task.metric_names:
                        if metric in DETERMINISTIC:
                            value = deterministic(metric, task.task_type, by_task[t][i], record.reference) if record.reference else None
                            scores[model][t][i].append({"metricName": metric, "result": value})
                        elif is_judged(metric, request.custom_metrics):
                            judged.append((model, t, i, metric, judge_prompt(metric, request.custom_metrics, record.prompt,
                                                                             by_task[t][i], record.reference)))
        if judged:
            evaluator = (request.evaluator_models or request.custom_evaluator_models)[0]
            worker, window = self.worker(evaluator)
            params = SamplingParams(temperature=0.0, max_tokens=JUDGE_MAX_TOKENS)
            with worker:
                texts = asyncio.run(self._all(worker, [GenerationRequest(messages=(Message("user", p),), params=params)
                                                       for *_, p in judged], window, f"judging with {evaluator}"))
            for (model, t, i, metric, _), text in zip(judged, texts, strict=True):
                value, why = ((None, f"not judged: {text.message}") if isinstance(text, InvalidInput)
                              else parse_judgement(text, metric, request.custom_metrics))
                scores[model][t][i].append({"metricName": metric, "result": value,
                                            "evaluatorDetails": [{"modelIdentifier": evaluator, "explanation": why}]})
        return scores

    def write(self, datasets: list[list[Record]], responses: dict[str, list[list[str]]], scores: dict) -> dict:
        request = self.request
        root = storage.join(request.output_uri if request.output_uri.endswith("/") else request.output_uri + "/",
                            f"{request.job_name}/{self.job_id}/")
        table: dict[str, dict[str, dict[str, float | None]]] = {}
        for model in responses:
            table[model] = {}
            for t, (task, records) in enumerate(zip(request.tasks, datasets, strict=True)):
                lines = [{"automatedEvaluationResult": {"scores": scores[model][t][i]}, "inputRecord": record.raw,
                          "modelResponses": [{"response": _text(responses[model][t][i]), "modelIdentifier": model}]}
                         for i, record in enumerate(records)]
                path = f"models/{_safe(model)}/taskTypes/{task.task_type}/datasets/{_safe(task.dataset_name)}/{self.job_id}_output.jsonl"
                storage.write_bytes(storage.join(root, path), "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode())
                table[model][task.task_type] = {
                    metric: _mean([s["result"] for row in scores[model][t] for s in row if s["metricName"] == metric])
                    for metric in task.metric_names}
        summary = {"models": table, "records": sum(len(r) for r in datasets), "output": root,
                   "report": storage.join(root, "report.html")}
        storage.write_bytes(storage.join(root, "summary.json"), json.dumps(summary, indent=1).encode())
        storage.write_bytes(storage.join(root, "report.html"), report_html(request, datasets, responses, scores, table).encode())
        return summary

    def stopped(self, _exc: BaseException) -> None:
        try:
            self.move(EvaluationStatus.STOPPED, end_time=utcnow())
        except Exception as exc:  # noqa: BLE001 - ended otherwise meanwhile: keep that
            print(f"not recorded: {exc}", flush=True)

    def failed(self, message: str) -> None:
        try:
            self.move(EvaluationStatus.FAILED, end_time=utcnow(), failure_messages=[message])
        except Exception as exc:  # noqa: BLE001
            print(f"not recorded: {exc}", flush=True)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(mean(present), 4) if present else None


def _text(response: str | InvalidInput) -> str:
    return response if isinstance(response, str) else f"(no response: {response.message})"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def report_html(request: EvaluationJobRequest, datasets, responses, scores, table) -> str:
    """One page, no script and nothing fetched: the summary table, a bar per model for each metric, every prompt."""
    e = html.escape
    models = list(responses)
    parts = [f"<!doctype html><meta charset=utf-8><title>{e(request.job_name)}</title><style>"
             "body{font:14px system-ui,sans-serif;margin:2em;max-width:72em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}details{margin:.4em 0}"
             ".bar{fill:#4a7bd0}.label{font-size:12px}pre{white-space:pre-wrap;background:#f6f6f6;padding:6px}</style>",
             f"<h1>Evaluation {e(request.job_name)}</h1>"]
    for t, task in enumerate(request.tasks):
        parts.append(f"<h2>{e(task.task_type)} on {e(task.dataset_name)} ({len(datasets[t])} prompts)</h2><table><tr><th>metric</th>"
                     + "".join(f"<th>{e(m)}</th>" for m in models) + "</tr>")
        for metric in task.metric_names:
            cells = "".join(f"<td>{_fmt(table[m][task.task_type][metric])}</td>" for m in models)
            parts.append(f"<tr><td>{e(metric)}</td>{cells}</tr>")
        parts.append("</table>")
        for metric in task.metric_names:  # a bar per model, 0-1
            height = 24 * len(models) + 8
            bars = "".join(
                f"<text class=label x=0 y={24 * k + 18}>{e(m[:28])}</text><rect class=bar x=200 y={24 * k + 6} height=16 "
                f"width={300 * (table[m][task.task_type][metric] or 0):.1f}></rect>"
                f"<text class=label x={206 + 300 * (table[m][task.task_type][metric] or 0):.1f} y={24 * k + 18}>"
                f"{_fmt(table[m][task.task_type][metric])}</text>"
                for k, m in enumerate(models))
            parts.append(f"<h3>{e(metric)}</h3><svg width=560 height={height} role=img aria-label='{e(metric)}'>{bars}</svg>")
        parts.append("<h3>Prompts</h3>")
        for i, record in enumerate(datasets[t]):
            parts.append(f"<details><summary>{e(record.prompt[:120])}</summary><pre>{e(record.prompt)}</pre>")
            if record.reference:
                parts.append(f"<p><b>reference</b></p><pre>{e(record.reference)}</pre>")
            for m in models:
                marks = "; ".join(f"{e(s['metricName'])} = {_fmt(s['result'])}"
                                  + (f" ({e(s['evaluatorDetails'][0]['explanation'])})" if s.get("evaluatorDetails") else "")
                                  for s in scores[m][t][i])
                parts.append(f"<p><b>{e(m)}</b>: {marks}</p><pre>{e(_text(responses[m][t][i]))}</pre>")
            parts.append("</details>")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    job_id = (argv or sys.argv[1:])[0]
    job = EvaluationProcess(job_id)
    return run_detached(job, name=f"evaluation job {job_id}", log_path=job.work_dir / LOG_NAME, stop=(EvaluationStopped,))


if __name__ == "__main__":
    sys.exit(main())
