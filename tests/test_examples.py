"""The examples/ scripts (the two reference notebooks as boto3 code) run as they stand against a real server,
on tiny settings: the tiny model, a few rows, a short book."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.timeout(1200)  # an example may run 600 s (run_example's limit), then its answers are checked


def run_example(server, script: str, *args: str) -> dict:
    env = {**os.environ, "TUNEFORGE_URL": server.url, "TUNEFORGE_HOME": str(server.home), "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": server.key[0], "AWS_SECRET_ACCESS_KEY": server.key[1]}  # a key issued by `tuneforge keys`
    done = subprocess.run([sys.executable, os.path.join(REPO, "examples", script), *args], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout[done.stdout.index("{\n"):])


def example(script: str):
    """The example script as a module: the test asks the models with the example's own request code."""
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), os.path.join(REPO, "examples", script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def provisioned(server, model_arn: str):
    """A provisioned throughput of the test's own on `model_arn` (the example deletes its own when it ends)."""
    bedrock = server.client("bedrock")
    arn = bedrock.create_provisioned_model_throughput(provisionedModelName=f"check-{model_arn.rsplit('/', 1)[1]}",
                                                      modelId=model_arn, modelUnits=1)["provisionedModelArn"]
    try:
        pt = example("finetune_summaries.py").wait(lambda: bedrock.get_provisioned_model_throughput(provisionedModelId=arn),
                                                   {"InService", "Failed"}, "provisioned model", 180)
        assert pt["status"] == "InService", pt.get("failureMessage")
        yield arn
    finally:
        bedrock.delete_provisioned_model_throughput(provisionedModelId=arn)


def test_fine_tuning_example(server, tmp_path):
    data = tmp_path / "dialogsum.jsonl"
    rows = [{"dialogue": f"#Person1#: I'd like room {i}.\n#Person2#: Room {i} is ready, sir.", "summary": f"#Person1# takes room {i}."}
            for i in range(16)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dialogue = tmp_path / "hotel.txt"  # the tiny model's context is 256 tokens: a short check-in
    dialogue.write_text("#Person1#: Room for John Sandals?\n#Person2#: Only MasterCard or VISA. Room 507.")
    result = run_example(server, "finetune_summaries.py", "--base-model", "tiny", "--data", str(data), "--records", "12",
                         "--batch-size", "4", "--learning-rate", "0.001", "--max-sequence-length", "128",
                         "--max-tokens", "8", "--dialogue", str(dialogue), "--output", str(tmp_path / "out"))
    assert result["customModel"].split(":")[5].startswith("custom-model/tiny/")
    # what it printed is what each model answers (greedy decoding: the same every time)
    summaries, runtime, text = example("finetune_summaries.py"), server.client("bedrock-runtime"), dialogue.read_text().strip()
    assert result["base"] == summaries.ask(runtime, "tiny", text, 8)
    with provisioned(server, result["customModel"]) as arn:
        assert result["custom"] == summaries.ask(runtime, arn, text, 8)


def test_continued_pre_training_example(server, tmp_path):
    book = tmp_path / "book.md"
    book.write_text("# The Harbor\n\n" + "\n\n".join(
        f"Chapter {i}. The ferry to Lanterna leaves at {i} o'clock from pier {i + 2}. The keeper counts the gulls." for i in range(40)))
    result = run_example(server, "continued_pretraining_book.py", "--base-model", "tiny", "--book", str(book),
                         "--chunk-tokens", "64", "--max-records", "8", "--batch-size", "4", "--max-tokens", "8",
                         "--output", str(tmp_path / "out"))
    assert "custom-model/tiny/" in result["customModel"]
    book_reader, runtime = example("continued_pretraining_book.py"), server.client("bedrock-runtime")
    assert result["before"] == book_reader.describe(runtime, "tiny", "Describe the book.", 8)  # its default --question
    with provisioned(server, result["customModel"]) as arn:
        assert result["after"] == book_reader.describe(runtime, arn, "Describe the book.", 8)
