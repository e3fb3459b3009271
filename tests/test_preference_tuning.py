"""Preference tuning (DPO) on the tiny Llama: the trainer in this process, then whole jobs through JobService.

The preference is recognizable: every chosen answer greets the guest ("Welcome"), no rejected one does, so a
model that learned it prefers the chosen answer of pairs it never saw.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.test_jobs import env, wait, write_jsonl  # noqa: F401  (env is a fixture)
from tuneforge.catalog.entries import Customization
from tuneforge.errors import InvalidInput
from tuneforge.jobs.layout import read_csv
from tuneforge.jobs.spec import JobRequest
from tuneforge.training import TrainConfig, parse_hyperparameters, train
from tuneforge.training.metrics import TRAINING_CSV, VALIDATION_CSV

HP = {"epochCount": "4", "batchSize": "4", "learningRate": "0.003", "learningRateWarmupSteps": "0", "maxSequenceLength": "64"}


def pairs(numbers) -> list[dict]:
    return [{"prompt": f"Guest: is room {n} ready?\nDesk: ", "chosen": f"Welcome! Room {n} is ready for you.",
             "rejected": f"Room {n} is not my problem."} for n in numbers]


def run(tiny_model_dir: Path, out: Path, **config):
    hp = parse_hyperparameters(HP, customization="PREFERENCE_TUNING")
    return train(TrainConfig(base=tiny_model_dir, kind=Customization.PREFERENCE_TUNING, training=pairs(range(500, 516)),
                             output=out, hparams=hp, threads=1, **config))


@torch.no_grad()
def implicit_margins(base: Path, adapter: Path, records: list[dict]) -> list[float]:
    """Per held-out pair, (log p(chosen) - log p(rejected)) under base + adapter minus the same under the base."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.training.data import collate
    from tuneforge.training.preference import preference_pairs, sequence_logps

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    found, _ = preference_pairs(tokenizer, records, max_len=64, eos_ids=[tokenizer.eos_token_id])
    batch = collate([p.chosen for p in found] + [p.rejected for p in found], pad_id=tokenizer.pad_token_id)
    cpu = torch.device("cpu")
    tuned = sequence_logps(model, batch, None, cpu)
    with model.disable_adapter():
        reference = sequence_logps(model, batch, None, cpu)
    n = len(found)
    return ((tuned[:n] - tuned[n:]) - (reference[:n] - reference[n:])).tolist()


def test_dpo_learns_the_preference_and_reports_reward_accuracy(tiny_model_dir, tmp_path):
    result = train(TrainConfig(base=tiny_model_dir, kind=Customization.PREFERENCE_TUNING, training=pairs(range(500, 516)),
                               validation=pairs(range(600, 604)), output=tmp_path,
                               hparams=parse_hyperparameters(HP, customization="PREFERENCE_TUNING"), threads=1))
    assert (result.steps, result.examples) == (16, 16)
    rows = read_csv(tmp_path / TRAINING_CSV)
    assert list(rows[0]) == ["step_number", "epoch_number", "training_loss", "rewards_chosen", "rewards_rejected",
                             "reward_margin", "reward_accuracy"]
    # the first step's policy is the reference (LoRA starts at zero): loss log 2, no margin
    assert float(rows[0]["training_loss"]) == pytest.approx(math.log(2), abs=1e-5)
    assert float(rows[0]["reward_margin"]) == pytest.approx(0, abs=1e-5)
    accuracy = [float(r["reward_accuracy"]) for r in rows]
    assert accuracy[-1] == 1.0 and sum(accuracy[-4:]) / 4 > sum(accuracy[:4]) / 4
    assert float(rows[-1]["training_loss"]) < 0.3 and float(rows[-1]["reward_margin"]) > 1
    assert result.training_metrics["reward_accuracy"] == accuracy[-1]
    validation = read_csv(tmp_path / VALIDATION_CSV)
    assert len(validation) == 4 and float(validation[-1]["reward_accuracy"]) == 1.0
    assert result.validation_metrics["reward_accuracy"] == 1.0
    artifact = json.loads((result.artifact_dir / "tuneforge-artifact.json").read_text())
    assert artifact["customizationType"] == "PREFERENCE_TUNING" and artifact["hyperparameters"]["beta"] == 0.1

    # the adapter prefers the greeting on pairs it never saw, by log-probability against the base
    margins = implicit_margins(tiny_model_dir, result.artifact_dir, pairs(range(700, 706)))
    assert all(m > 0 for m in margins), margins


def test_precomputed_and_per_step_references_train_the_same(tiny_model_dir, tmp_path):
    once = run(tiny_model_dir, tmp_path / "once", reference="precomputed")
    every = run(tiny_model_dir, tmp_path / "every", reference="per-step")
    assert once.training_loss == pytest.approx(every.training_loss, rel=1e-4, abs=1e-6)
    first = [float(r["training_loss"]) for r in read_csv(tmp_path / "once" / TRAINING_CSV)]
    second = [float(r["training_loss"]) for r in read_csv(tmp_path / "every" / TRAINING_CSV)]
    assert first == pytest.approx(second, rel=1e-4, abs=1e-6)


def preference_request(tmp_path: Path, name: str, records: list | None = None, **overrides) -> JobRequest:
    fields = dict(job_name=name, custom_model_name=f"{name}-model", base_model_identifier="tiny",
                  customization_type="PREFERENCE_TUNING", output_uri=str(tmp_path / "out"), hyperparameters=dict(HP),
                  training_data_uri=write_jsonl(tmp_path / f"{name}.jsonl", pairs(range(500, 516)) if records is None else records))
    fields.update(overrides)
    return JobRequest(**fields)


@pytest.mark.parametrize(("hyperparameters", "needle"), [
    ({"beta": "2"}, "hyperParameters.beta: must be a number 0.01-1, got '2'"),
    ({"method": "full"}, "hyperParameters.method: preference tuning trains a LoRA adapter"),
])
def test_bad_preference_hyperparameters_are_refused_at_creation(env, tmp_path, hyperparameters, needle):
    _, jobs, _ = env
    with pytest.raises(InvalidInput) as err:
        jobs.create(preference_request(tmp_path, "bad-hp", hyperparameters={**HP, **hyperparameters}))
    assert needle in err.value.message and err.value.field == "hyperParameters"
    with pytest.raises(InvalidInput) as err:  # beta belongs to preference tuning
        jobs.create(preference_request(tmp_path, "ft-beta", customization_type="FINE_TUNING", hyperparameters={"beta": "0.1"}))
    assert "hyperParameters.beta: applies to preference tuning" in err.value.message
    assert jobs.list().jobs == []


@pytest.mark.slow
def test_a_preference_job_completes_registers_a_model_and_reports_reward_accuracy(env, tmp_path, tiny_model_dir):
    _, jobs, registry = env
    validation = write_jsonl(tmp_path / "val.jsonl", pairs(range(600, 604)))
    row = jobs.create(preference_request(tmp_path, "dpo", validation_data_uris=(validation,)))
    done = wait(jobs, "dpo")
    assert done.status == "Completed", done.failure_message
    assert done.customization_type == "PREFERENCE_TUNING"
    out = tmp_path / "out" / f"model-customization-job-{row.job_id}"
    rows = read_csv(out / TRAINING_CSV)
    assert len(rows) == 16 and float(rows[-1]["reward_accuracy"]) == 1.0
    assert done.progress["rewardAccuracy"] == 1.0 and done.progress["validationRewardAccuracy"] == 1.0
    assert done.progress["rewardMargin"] > 1 and done.training_loss < 0.3
    model = registry.get("dpo-model")
    assert model.customization_type == "PREFERENCE_TUNING" and done.output_model_arn == model.model_arn
    assert (Path(model.artifact_dir) / "adapter_config.json").is_file()
    assert all(m > 0 for m in implicit_margins(tiny_model_dir, Path(model.artifact_dir), pairs(range(700, 706))))


@pytest.mark.slow
def test_bad_pairs_fail_the_job_before_training_naming_line_and_field(env, tmp_path):
    _, jobs, _ = env
    bad = pairs(range(3)) + [{"prompt": "q", "chosen": "same answer", "rejected": "same answer"}, {"prompt": "q", "chosen": "a"}]
    jobs.create(preference_request(tmp_path, "bad-pairs", records=bad))
    done = wait(jobs, "bad-pairs")
    assert done.status == "Failed"
    assert done.status_details["validationDetails"]["status"] == "Failed"
    assert done.status_details["trainingDetails"]["status"] == "NotStarted"
    assert "line 4 [rejected]: is the same text as chosen" in done.failure_message
    assert "line 5 [rejected]: missing" in done.failure_message


def test_auto_hyperparameters_of_a_preference_job():
    from tuneforge.training.auto import DataFacts, choose

    hp = parse_hyperparameters({"learningRate": "auto", "beta": "auto", "batchSize": "auto"}, customization="PREFERENCE_TUNING")
    chosen, reasons = choose(hp, DataFacts(records=32, preference=True), family="default")
    assert (chosen.batch_size, chosen.beta) == (2, 0.1) and reasons["beta"].reason == "0.1, the DPO paper's"
    assert chosen.learning_rate == pytest.approx(5e-5 * math.sqrt(2 / 8))  # preference tuning's own rate, batch-scaled


def test_jobs_get_shows_the_reward_accuracy():
    from rich.console import Console

    from tuneforge.cli.jobs import _progress_table
    from tuneforge.db.tables import CustomizationJobRow

    row = CustomizationJobRow(job_name="prefs", status="Completed", status_details={}, chosen_hyperparameters=None,
                              training_loss=0.01, validation_loss=0.02, output_model_arn=None, failure_message=None,
                              progress={"phase": "completed", "step": 16, "totalSteps": 16, "epoch": 4, "epochs": 4,
                                        "trainingLoss": 0.01, "rewardAccuracy": 1.0, "rewardMargin": 8.5,
                                        "validationRewardAccuracy": 0.75, "validationRewardMargin": 2.25})
    console = Console(record=True, width=120)
    console.print(_progress_table(row))
    text = console.export_text()
    assert "reward accuracy" in text and "100.0% (margin 8.500)" in text
    assert "validation reward accuracy" in text and "75.0% (margin 2.250)" in text


def test_a_stopped_preference_run_resumes_with_the_same_losses(tiny_model_dir, tmp_path):
    whole = run(tiny_model_dir, tmp_path / "whole")
    steps = []
    hp = parse_hyperparameters(HP, customization="PREFERENCE_TUNING")
    config = dict(base=tiny_model_dir, kind=Customization.PREFERENCE_TUNING, training=pairs(range(500, 516)),
                  output=tmp_path / "split", hparams=hp, threads=1)
    stopped = train(TrainConfig(**config), on_step=steps.append, should_stop=lambda: len(steps) >= 6)
    assert stopped.stopped and stopped.steps == 6
    resumed = train(TrainConfig(**config, resume=True))
    assert resumed.steps == 16 and not resumed.stopped
    first = [float(r["training_loss"]) for r in read_csv(tmp_path / "whole" / TRAINING_CSV)]
    second = [float(r["training_loss"]) for r in read_csv(tmp_path / "split" / TRAINING_CSV)]
    assert second == pytest.approx(first, rel=1e-4, abs=1e-6)
    assert resumed.training_metrics == pytest.approx(whole.training_metrics, rel=1e-3, abs=1e-5)
