"""The training engine on the tiny Llama: real tokenizers, real training, no mocks.

    python -m pytest --noconftest tests/test_training.py -q
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

import tuneforge.training as training
from tests.tiny_model import CORPUS
from tuneforge.catalog.entries import Customization
from tuneforge.errors import InvalidInput
from tuneforge.training import (
    IGNORE,
    ARTIFACT_FILE,
    Example,
    StepMetrics,
    TrainConfig,
    chat_example,
    collate,
    fine_tuning_examples,
    parse_hyperparameters,
    pretraining_rows,
    prompt_completion_example,
    train,
)

PROMPT = "Dialogue: The guest checks in at the hotel.\nSummary: "  # the reference prompts end in a space
COMPLETION = "The guest checks in."
NAMES = ["Ann", "Bob", "Cy", "Di", "Ed", "Flo", "Gus", "Hal"]
RECORDS = [{"prompt": f"Dialogue: {n} checks in at the hotel.\nSummary: ", "completion": f"{n} checks in."} for n in NAMES]
FAST = {"batchSize": "4", "learningRate": "1e-2", "learningRateWarmupSteps": "1", "maxSequenceLength": "128"}  # tiny model: big steps


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny matrices: one thread is fastest, and two threads next to a busy process stall in OpenMP barriers."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Path:
    return tiny_model_dir  # the suite's one tiny model (tests/tiny_model.py); training only reads it


@pytest.fixture(scope="module")
def tokenizer(base: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base)


def run(base: Path, output: Path, hp: dict[str, str], **kwargs) -> tuple[training.TrainResult, list[StepMetrics]]:
    steps: list[StepMetrics] = []
    should_stop = kwargs.pop("should_stop", None)
    cfg = TrainConfig(base=base, kind=kwargs.pop("kind", Customization.FINE_TUNING), training=kwargs.pop("records", RECORDS),
                      output=output, hparams=parse_hyperparameters({**FAST, **hp}), **kwargs)
    return train(cfg, on_step=steps.append, should_stop=should_stop), steps


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---- hyperparameters ------------------------------------------------------------------------------------------------
def test_hyperparameter_errors_name_every_bad_key() -> None:
    raw = {"epochCount": "abc", "batchSize": "0", "learningRate": "nan", "loraRank": "1.5", "method": "qlora",
           "loraTargetModules": "q_proj,,v", "warmup": "3"}
    with pytest.raises(InvalidInput) as caught:
        parse_hyperparameters(raw)
    message = str(caught.value)
    assert "hyperParameters.epochCount: must be an integer 1-10, got 'abc'" in message
    assert "hyperParameters.batchSize: must be an integer 1-64, got '0'" in message
    for key in ("learningRate", "loraRank", "method", "loraTargetModules"):
        assert f"hyperParameters.{key}:" in message
    assert "hyperParameters.warmup: unknown" in message and "learningRateWarmupSteps" in message  # lists the allowed keys

    with pytest.raises(InvalidInput) as caught:
        parse_hyperparameters({"batchSize": "2", "learningRateWarmupSteps": "5"}, family="llama2")
    assert "batchSize: must be an integer 1, got '2'" in str(caught.value)
    assert "learningRateWarmupSteps: unknown for the llama2 family" in str(caught.value)


def test_hyperparameter_defaults_per_family() -> None:
    default = parse_hyperparameters({})
    assert (default.epoch_count, default.batch_size, default.learning_rate, default.method) == (1, 8, 2e-4, "lora")
    assert (default.lora_rank, default.lora_alpha, default.max_sequence_length) == (16, 32, None)
    assert parse_hyperparameters({"method": "full"}).learning_rate == 2e-5
    titan = parse_hyperparameters({"epochCount": " 2 ", "learningRate": "0.00003"}, family="titan")
    assert (titan.epoch_count, titan.batch_size, titan.learning_rate, titan.warmup_steps) == (2, 1, 3e-5, 5)
    llama2 = parse_hyperparameters({}, family="llama2")
    assert (llama2.epoch_count, llama2.batch_size, llama2.learning_rate, llama2.warmup_steps) == (5, 1, 1e-4, 0)
    assert parse_hyperparameters({"loraTargetModules": "q_proj, v_proj"}).lora_target_modules == ("q_proj", "v_proj")


# ---- examples -------------------------------------------------------------------------------------------------------
def test_prompt_completion_learns_only_the_completion_and_eos(tokenizer) -> None:
    example = prompt_completion_example(tokenizer, PROMPT, COMPLETION, eos_id=tokenizer.eos_token_id)
    prompt_ids = tokenizer(PROMPT)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(prompt_ids[-1]) == "Ġ"  # "Summary: " ends in a standalone space token
    assert list(example.input_ids[: len(prompt_ids)]) == prompt_ids  # exactly what inference feeds
    assert set(example.labels[: len(prompt_ids)]) == {IGNORE}
    learned = example.labels[len(prompt_ids) :]
    assert list(learned) == list(example.input_ids[len(prompt_ids) :]) and learned[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(learned[:-1]) == COMPLETION  # no leading space: the prompt already has it
    assert tokenizer.decode(example.input_ids[:-1]) == PROMPT + COMPLETION

    # a completion that starts with a space is not trained as a double space
    assert prompt_completion_example(tokenizer, PROMPT, " " + COMPLETION, eos_id=tokenizer.eos_token_id) == example
    # no space on either side of the boundary: the completion is tokenized in context
    joined = prompt_completion_example(tokenizer, "Summary:", " " + COMPLETION, eos_id=tokenizer.eos_token_id)
    assert tokenizer.decode(joined.input_ids[:-1]) == "Summary: " + COMPLETION


def test_completion_boundary_with_a_sentencepiece_style_tokenizer() -> None:
    """Metaspace tokenizers prepend '▁' to text tokenized on its own; the completion must not get a second space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    bpe.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    alphabet = sorted(set("".join(CORPUS) + PROMPT))
    bpe.train_from_iterator(CORPUS + [PROMPT + COMPLETION] * 5,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=alphabet))
    sp = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    assert sp.convert_ids_to_tokens(sp(COMPLETION, add_special_tokens=False)["input_ids"])[0].startswith("▁")  # the trap
    example = prompt_completion_example(sp, PROMPT, COMPLETION, eos_id=sp.eos_token_id)
    prompt_ids = sp(PROMPT)["input_ids"]
    assert list(example.input_ids[: len(prompt_ids)]) == prompt_ids
    assert sp.decode(example.input_ids[:-1]) == PROMPT + COMPLETION


def test_chat_example_learns_the_last_assistant_turn(tokenizer) -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"text": "Summarize: the guest checks in."}]},  # Bedrock's content form
        {"role": "assistant", "content": COMPLETION},
    ]
    example = chat_example(tokenizer, {"messages": messages, "system": "Be brief."}, eos_ids=[tokenizer.eos_token_id])
    rendered = [{"role": "system", "content": "Be brief."}, *messages[:2], {"role": "user", "content": "Summarize: the guest checks in."}]
    prefix_text = tokenizer.apply_chat_template(rendered, tokenize=False, add_generation_prompt=True)
    prefix = tokenizer(prefix_text, add_special_tokens=False)["input_ids"]  # as the inference engine tokenizes
    assert list(example.input_ids[: len(prefix)]) == prefix and set(example.labels[: len(prefix)]) == {IGNORE}
    assert tokenizer.decode(example.labels[len(prefix) :]) == COMPLETION + "<|im_end|>"  # content + end of turn
    assert example.input_ids[-1] == tokenizer.eos_token_id


def test_pretraining_rows_pack_documents_and_restart_positions(tokenizer) -> None:
    docs = ["The guest checks in.", CORPUS[1], "Knowledge bases retrieve passages."]  # the middle one is long
    ids = [tokenizer(d)["input_ids"] + [tokenizer.eos_token_id] for d in docs]
    rows = pretraining_rows(tokenizer, [{"input": d} for d in docs], max_len=16, eos_id=tokenizer.eos_token_id)
    assert [len(r.input_ids) for r in rows[:-1]] == [16] * (len(rows) - 1) and 0 < len(rows[-1].input_ids) <= 16
    assert [t for r in rows for t in r.input_ids] == [t for d in ids for t in d]  # nothing lost, EOS after each doc
    assert all(r.labels == r.input_ids for r in rows)  # every token is learned
    starts = {0, len(ids[0]), len(ids[0]) + len(ids[1])}  # document starts in the token stream
    starts |= set(range(0, sum(map(len, ids)), 16))  # and row starts, where the long document continues
    positions = [p for r in rows for p in r.position_ids]
    assert {i for i, p in enumerate(positions) if p == 0} == starts
    batch = collate(rows, pad_id=tokenizer.pad_token_id)
    eos_at = len(ids[0]) - 1  # the first document's EOS (row 0) is a target, and predicts nothing across the boundary
    assert batch.targets[0, eos_at - 1] == tokenizer.eos_token_id and batch.targets[0, eos_at] == IGNORE


def test_packed_row_logits_equal_each_example_alone(base: Path, tokenizer) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="sdpa").eval()
    examples, _ = fine_tuning_examples(tokenizer, RECORDS[:3] + [{"prompt": CORPUS[1], "completion": "Fifth floor."}],
                                       max_len=128, eos_ids=[tokenizer.eos_token_id])
    packed = Example(*(sum((getattr(e, f) for e in examples), ()) for f in ("input_ids", "labels", "position_ids")))
    with torch.no_grad():
        alone = [model(input_ids=torch.tensor([e.input_ids])).logits[0] for e in examples]
        batch = collate([packed], pad_id=tokenizer.pad_token_id)
        # use_cache=False as in training: with a cache, transformers does not look for restarts in position_ids
        together = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits[0]
        padded = collate(examples, pad_id=tokenizer.pad_token_id)  # one example a row, padded at the end
        rows = model(input_ids=padded.input_ids, position_ids=padded.position_ids, use_cache=False).logits
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-5, rtol=0)
    for i, logits in enumerate(alone):
        torch.testing.assert_close(rows[i, : len(logits)], logits, atol=1e-5, rtol=0)


# ---- training -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_run(base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[training.TrainResult, list[StepMetrics], Path]:
    output = tmp_path_factory.mktemp("lora")
    result, steps = run(base, output, {"epochCount": "6"}, validation=RECORDS[:4])
    return result, steps, output


def test_lora_fine_tuning_lowers_loss_and_writes_bedrock_metrics(lora_run, base: Path) -> None:
    result, steps, output = lora_run
    per_epoch = [[s.loss for s in steps if s.epoch == e] for e in range(6)]
    assert sum(per_epoch[-1]) / 2 < sum(per_epoch[0]) / 2 / 2  # the loss at least halves
    assert (result.steps, result.epochs, result.stopped, result.examples) == (12, 6, False, 8)
    assert result.validation_loss is not None and result.validation_loss < steps[0].loss
    assert [s.step for s in steps] == list(range(12)) and all(s.tokens > 0 and s.tokens_per_second > 0 for s in steps)
    assert steps[0].learning_rate == pytest.approx(1e-2) and steps[-1].learning_rate < steps[1].learning_rate

    rows = read_csv(output / training.TRAINING_CSV)
    assert list(rows[0]) == ["step_number", "epoch_number", "training_loss", "perplexity"]
    assert [(int(r["step_number"]), int(r["epoch_number"])) for r in rows] == [(s.step, s.epoch) for s in steps]
    validation = read_csv(output / training.VALIDATION_CSV)
    assert list(validation[0]) == ["step_number", "epoch_number", "validation_loss", "perplexity"] and len(validation) == 6

    artifact = json.loads((result.artifact_dir / ARTIFACT_FILE).read_text())
    assert artifact["method"] == "lora" and Path(artifact["base"]) == base
    assert {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json"} <= {p.name for p in result.artifact_dir.iterdir()}


def test_saved_adapter_loads_onto_the_base_and_changes_its_output(lora_run, base: Path, tokenizer) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([tokenizer(RECORDS[0]["prompt"])["input_ids"]])
    with torch.no_grad():
        before = AutoModelForCausalLM.from_pretrained(base).eval()(ids).logits
        tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), lora_run[0].artifact_dir).eval()
        after = tuned(ids).logits
    assert not torch.allclose(before, after, atol=1e-3)
    assert after[0, -1].argmax() == tokenizer(RECORDS[0]["completion"], add_special_tokens=False)["input_ids"][0]


def test_same_seed_gives_identical_losses(base: Path, tmp_path: Path) -> None:
    first = [s.loss for s in run(base, tmp_path / "a", {"epochCount": "2", "loraDropout": "0.1"})[1]]
    second = [s.loss for s in run(base, tmp_path / "b", {"epochCount": "2", "loraDropout": "0.1"})[1]]
    other = [s.loss for s in run(base, tmp_path / "c", {"epochCount": "2", "loraDropout": "0.1", "seed": "7"})[1]]
    assert first == second and first != other


@pytest.mark.parametrize(("stop_at", "method"), [(3, "lora"), (4, "lora"), (4, "full")],
                         ids=["lora-after-epoch-1", "lora-mid-epoch-2", "full-mid-epoch-2"])
def test_resume_gives_the_same_losses_as_an_uninterrupted_run(base: Path, tmp_path: Path, stop_at: int, method: str) -> None:
    # 8 records in batches of 3: 3 steps an epoch, the last one short
    hp = {"epochCount": "2", "batchSize": "3", "loraDropout": "0.1", "method": method, "weightDecay": "0.01"}
    straight = [s.loss for s in run(base, tmp_path / "straight", hp)[1]]
    calls = iter(range(100))
    stopped, before = run(base, tmp_path / "resumed", hp, should_stop=lambda: next(calls) >= stop_at)
    assert stopped.stopped and stopped.steps == stop_at and stopped.artifact_dir is None
    checkpoint = tmp_path / "resumed" / "checkpoints" / f"step-{stop_at}"
    weights = "adapter" if method == "lora" else "model"
    assert {p.name for p in checkpoint.iterdir()} == {weights, "optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json"}
    resumed, after = run(base, tmp_path / "resumed", hp, resume=True)
    assert [s.loss for s in before + after] == straight
    assert [s.step for s in after] == list(range(stop_at, 6)) and resumed.steps == 6 and not resumed.stopped
    assert [int(r["step_number"]) for r in read_csv(tmp_path / "resumed" / training.TRAINING_CSV)] == list(range(6))


def test_gradient_accumulation_weighs_every_token_the_same(base: Path, tmp_path: Path) -> None:
    """A batch of 8, 8 accumulated micro-batches of 1, or 8 forward passes of one row: the same window of
    (different-length) examples, so the same losses and updates."""
    hp = {"epochCount": "3", "learningRateWarmupSteps": "0", "loraDropout": "0"}  # dropout masks depend on shapes
    whole = [s.loss for s in run(base, tmp_path / "a", {**hp, "batchSize": "8"}, dtype="float32")[1]]
    accumulated = [s.loss for s in run(base, tmp_path / "b", {**hp, "batchSize": "1", "gradientAccumulationSteps": "8"}, dtype="float32")[1]]
    split = [s.loss for s in run(base, tmp_path / "c", {**hp, "batchSize": "8"}, dtype="float32", tokens_per_forward=1)[1]]
    assert whole == pytest.approx(accumulated, rel=1e-5) and whole == pytest.approx(split, rel=1e-5)


def test_resume_refuses_other_hyperparameters(base: Path, tmp_path: Path) -> None:
    run(base, tmp_path, {"epochCount": "1"}, should_stop=lambda: True)
    with pytest.raises(InvalidInput, match="different hyperparameters"):
        run(base, tmp_path, {"epochCount": "2"}, resume=True)


def test_unknown_lora_target_module_is_invalid_input(base: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="loraTargetModules"):
        run(base, tmp_path, {"loraTargetModules": "nope_proj"})


def test_full_fine_tuning_writes_full_weights(base: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    result, steps = run(base, tmp_path, {"epochCount": "2", "method": "full", "learningRate": "1e-3"})
    assert steps[-1].loss < steps[0].loss
    names = {p.name for p in result.artifact_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", ARTIFACT_FILE} <= names and "adapter_config.json" not in names
    tuned, original = AutoModelForCausalLM.from_pretrained(result.artifact_dir), AutoModelForCausalLM.from_pretrained(base)
    assert not torch.equal(tuned.model.layers[0].mlp.up_proj.weight, original.model.layers[0].mlp.up_proj.weight)


def test_continued_pre_training_runs_on_packed_documents(base: Path, tmp_path: Path) -> None:
    docs = [{"input": text} for text in CORPUS[:6]]
    result, steps = run(base, tmp_path, {"epochCount": "3", "batchSize": "2", "maxSequenceLength": "32"},
                        kind=Customization.CONTINUED_PRE_TRAINING, records=docs)
    assert steps[-1].loss < steps[0].loss
    assert {"adapter_config.json", "adapter_model.safetensors", ARTIFACT_FILE} <= {p.name for p in result.artifact_dir.iterdir()}
    with pytest.raises(InvalidInput, match="training record 1: continued pre-training takes"):
        run(base, tmp_path, {}, kind=Customization.CONTINUED_PRE_TRAINING, records=RECORDS)


def test_public_api_matches_all() -> None:
    exported = set(training.__all__)
    assert len(exported) == len(training.__all__)  # no name twice
    # public names: the eager imports (not submodules, set on the package once imported) and the lazy ones
    public = {n for n, v in vars(training).items() if not n.startswith("_") and not isinstance(v, ModuleType)}
    assert exported == public - {"annotations", "Any"} | set(training._LAZY)
    for name in exported:
        getattr(training, name)  # each resolves: the lazy ones import their module
