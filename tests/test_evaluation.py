"""Evaluation: ROUGE against hand-computed values, generation and perplexity in the child process against the
serving worker and a direct transformers computation, and `tuneforge eval ...` on a base and a real custom model."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

from tuneforge.errors import InvalidInput
from tuneforge.evaluation import EvalModel, HeldOutText, PromptRow, compare_perplexity, compare_rouge, load_prompt_rows, load_texts, score_rouge
from tuneforge.inference.params import GenerationRequest, SamplingParams
from tuneforge.inference.spec import WorkerSpec
from tuneforge.serving.client import WorkerProcess

PROMPTS = ["The guest checks in", "Fine-tuning teaches a model", "Knowledge bases retrieve", "Exchange rules describe"]


def run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "tuneforge", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    if check and proc.returncode != 0:
        raise AssertionError(f"tuneforge {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def tiny(tiny_model_dir, label="tiny") -> EvalModel:
    return EvalModel(label, WorkerSpec(label, str(tiny_model_dir), dtype="float32"))


# ---- ROUGE, by hand


def test_rouge_matches_hand_computed_values():
    # unigrams: 5 of 6 shared both ways -> F 5/6; bigrams: the-cat, on-the, the-mat of 5 -> 3/5;
    # longest common subsequence "the cat on the mat", 5 of 6 -> 5/6
    one = score_rouge(["the cat sat on the mat"], ["the cat was on the mat"])
    assert one.rouge1 == pytest.approx(5 / 6) and one.rouge2 == pytest.approx(3 / 5) and one.rougeL == pytest.approx(5 / 6)
    # "a b c d" vs "a c": P=2/4, R=2/2 -> F=2/3; no shared bigram; LCS "a c" -> 2/3
    two = score_rouge(["a b c d"], ["a c"])
    assert (two.rouge1, two.rouge2, two.rougeL) == pytest.approx((2 / 3, 0.0, 2 / 3))
    # corpus figure is the mean over pairs; an empty prediction scores 0; case and punctuation do not count
    both = score_rouge(["the cat sat on the mat", "", "The CAT, sat!"], ["the cat was on the mat", "anything", "the cat sat"])
    assert both.rouge1 == pytest.approx((5 / 6 + 0 + 1) / 3) and both.per_pair[1] == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    # the Porter stemmer folds inflections (on by default, as in summarization papers)
    assert score_rouge(["she checked in"], ["she checks in"]).rouge1 == 1.0
    assert score_rouge(["she checked in"], ["she checks in"], use_stemmer=False).rouge1 == pytest.approx(2 / 3)
    with pytest.raises(InvalidInput, match="pair up"):
        score_rouge(["a"], ["a", "b"])


# ---- the child process, against the serving worker and transformers


@pytest.mark.slow  # evaluation processes load the model
def test_generation_is_the_served_greedy_text_and_scores_itself_perfectly(tiny_model_dir):
    with WorkerProcess(WorkerSpec("tiny", str(tiny_model_dir), dtype="float32")) as worker:
        served = [worker.generate(GenerationRequest(prompt=p, params=SamplingParams(temperature=0.0, max_tokens=12))).text.strip()
                  for p in PROMPTS]
    events = []
    rows = [PromptRow(p, text) for p, text in zip(PROMPTS, served)]
    result = compare_rouge([tiny(tiny_model_dir)], rows, max_tokens=12, on_event=events.append)
    assert result.results[0].predictions == served
    assert result.results[0].generated_tokens == 4 * 12  # a random model does not stop early
    assert [e["done"] for e in events if e["event"] == "progress"] == [1, 2, 3, 4]
    wordy = [i for i, text in enumerate(served) if any(c.isalnum() for c in text)]  # texts with something to score
    assert wordy and all(result.results[0].scores.per_pair[i]["rouge1"] == 1.0 for i in wordy)
    # a chat-template prompt is another input, so another text
    chat = compare_rouge([tiny(tiny_model_dir)], rows[:1], max_tokens=12, chat=True)
    assert chat.chat and chat.results[0].predictions[0] != served[0]


@pytest.mark.slow  # evaluation processes load the model
def test_perplexity_equals_the_models_own_loss(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    short = "The guest checks in at the hotel and pays with a credit card."
    long = " ".join(["Exchange rules describe order types, auctions, market makers and trading halts."] * 30)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    ids = tokenizer(short)["input_ids"] + [tokenizer.eos_token_id]
    with torch.no_grad():
        expected = model(torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()  # mean over len(ids) - 1 predictions

    result = compare_perplexity([tiny(tiny_model_dir)], [HeldOutText("short", short)]).results[0]
    assert result.tokens == len(ids) - 1 and result.loss == pytest.approx(expected, rel=1e-4)
    assert result.perplexity == pytest.approx(math.exp(expected), rel=1e-4) and result.max_length == 256

    # a text longer than the window runs over several rows, each scored without the previous one as context
    long_ids = tokenizer(long)["input_ids"] + [tokenizer.eos_token_id]
    windows = [long_ids[i:i + 64] for i in range(0, len(long_ids), 64)]
    with torch.no_grad():
        total = sum(model(torch.tensor([w]), labels=torch.tensor([w])).loss.item() * (len(w) - 1) for w in windows if len(w) > 1)
    predicted = sum(len(w) - 1 for w in windows)
    both = compare_perplexity([tiny(tiny_model_dir)], [HeldOutText("long", long)], max_length=64, tokens_per_forward=256).results[0]
    assert both.tokens == predicted and both.loss == pytest.approx(total / predicted, rel=1e-4)


@pytest.mark.slow  # evaluation processes load the model
def test_bad_inputs_fail_with_the_field_named(tiny_model_dir, tmp_path):
    with pytest.raises(InvalidInput, match="row 1: the prompt is .* tokens, longer than the model's context of 256") as err:
        compare_rouge([tiny(tiny_model_dir)], [PromptRow("rules " * 400, "x")], max_tokens=4)
    assert err.value.field == "prompt"
    with pytest.raises(InvalidInput, match="longer than the model's context"):
        compare_perplexity([tiny(tiny_model_dir)], [HeldOutText("t", "text")], max_length=512)
    with pytest.raises(InvalidInput, match="given once"):
        compare_rouge([tiny(tiny_model_dir), tiny(tiny_model_dir)], [PromptRow("a", "b")])
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}) + "\n")
    with pytest.raises(InvalidInput, match="prompt/completion records"):
        load_prompt_rows(chat)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n{oops\n")
    with pytest.raises(InvalidInput, match="line 2"):
        load_prompt_rows(broken)
    assert len(load_prompt_rows(broken, limit=1)) == 1  # stops before the bad line


def test_texts_come_from_jsonl_lines_and_documents(tmp_path):
    (tmp_path / "held.jsonl").write_text(json.dumps({"input": "first text"}) + "\n" + json.dumps({"input": "second"}) + "\n")
    (tmp_path / "notes.md").write_text("# Title\n\nSome *body* text.\n")
    texts = load_texts([tmp_path / "held.jsonl", tmp_path / "notes.md"])
    assert [t.text for t in texts] == ["first text", "second", "Title\n\nSome body text."]
    assert texts[0].source.endswith("held.jsonl:1")


# ---- the CLI, on a base model and a custom model made by a real job


def summaries(n: int) -> list[dict]:
    return [{"prompt": f"Summarize the conversation.\n\n#Person1#: Room {500 + i}, please.\n\nSummary: ",
             "completion": "The guest checks in at the hotel."} for i in range(n)]


@pytest.mark.slow  # a training job, then CLI evaluations
def test_cli_compares_a_base_and_its_fine_tuned_model(home, tmp_path, tiny_model_dir):
    run("models", "add", "tiny", str(tiny_model_dir))
    train, held_out = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in summaries(16)))
    held_out.write_text("".join(json.dumps(r) + "\n" for r in summaries(20)[16:]))
    run("jobs", "create", "ft", "-m", "tiny", "-t", str(train), "-p", "epochCount=4", "-p", "batchSize=4",
        "-p", "learningRate=0.01", "-p", "maxSequenceLength=128", "--watch")

    chart = tmp_path / "rouge.png"
    table = run("eval", "rouge", str(held_out), "-m", "tiny", "-m", "ft", "--max-tokens", "16", "--dtype", "float32",
                "--chart", str(chart), "--show", "1")
    assert "ROUGE on 4 rows" in table.stdout and "row 1 reference: The guest checks in at the hotel." in table.stdout
    assert chart.read_bytes().startswith(b"\x89PNG")
    data = json.loads(run("eval", "rouge", str(held_out), "-m", "tiny", "-m", "ft", "--max-tokens", "16", "--dtype", "float32", "--json").stdout)
    base, tuned = data["models"]
    assert (base["model"], tuned["model"]) == ("tiny", "ft") and data["rows"] == 4
    # the custom model learned the one summary it was trained on; the random base did not
    assert tuned["rouge1"] > 0.6 and base["rouge1"] < 0.3, data["examples"][0]["predictions"]
    assert data["examples"][0]["predictions"]["ft"].startswith("The guest checks in")

    text = tmp_path / "held.txt"
    text.write_text("The guest checks in at the hotel. " * 20)
    ppl = json.loads(run("eval", "perplexity", str(text), "-m", "tiny", "-m", "ft", "--dtype", "float32", "--json").stdout)
    assert ppl["models"][1]["perplexity"] < ppl["models"][0]["perplexity"]  # it has seen this sentence 64 times
    assert "Perplexity on 1 held-out text(s)" in run("eval", "perplexity", str(text), "-m", "tiny", "--dtype", "float32").stdout

    missing = run("eval", "rouge", str(held_out), "-m", "nope", check=False)
    assert missing.returncode == 3 and "tuneforge custom-models list" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.slow  # six CLI commands, evaluations among them
def test_cli_process_never_imports_torch(home, tmp_path, tiny_model_dir):
    """Run the commands in-process in a fresh interpreter and look at sys.modules afterwards."""
    rows = tmp_path / "dev.jsonl"
    rows.write_text("".join(json.dumps({"prompt": p, "completion": "x"}) + "\n" for p in PROMPTS[:2]))
    doc = tmp_path / "doc.txt"
    doc.write_text("The guest checks in. " * 50)
    code = textwrap.dedent(f"""
        import sys
        from tuneforge.cli.main import app
        def call(*args):
            try:
                app(list(args), standalone_mode=False)
            except SystemExit as exc:
                assert not exc.code, exc.code
        call("models", "add", "tiny", {str(tiny_model_dir)!r})
        call("data", "from-hf", {str(rows)!r}, "--prompt-template", "{{prompt}}", "--completion-field", "completion", "--out", {str(tmp_path / "o.jsonl")!r})
        call("data", "from-docs", {str(doc)!r}, "--model", "tiny", "--out", {str(tmp_path / "c.jsonl")!r})
        call("data", "validate", {str(tmp_path / "c.jsonl")!r}, "--kind", "continued-pre-training", "--model", "tiny")
        call("eval", "rouge", {str(rows)!r}, "-m", "tiny", "--max-tokens", "3", "--dtype", "float32")
        call("eval", "perplexity", {str(doc)!r}, "-m", "tiny", "--dtype", "float32")
        assert "torch" not in sys.modules, "torch was imported"
        assert "transformers" not in sys.modules, "transformers was imported"
    """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
