"""The real `tuneforge` command in a subprocess, with its own TUNEFORGE_HOME."""

import json
import os
import subprocess
import sys

import pytest

from tuneforge.catalog.builtin import DEFAULT_MODEL_ID


def run(*args, check=True, input=None):
    proc = subprocess.run(
        [sys.executable, "-m", "tuneforge", *args], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, input=input
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tuneforge {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_version():
    from tuneforge import __version__

    assert run("version").stdout.strip() == __version__


@pytest.mark.slow  # CLI processes
def test_models_list_table_and_json(home):
    table = run("models", "list", "--wide").stdout
    assert DEFAULT_MODEL_ID in table and "FINE_TUNING" in table and "CONTINUED_PRE_TRAINING" in table
    data = json.loads(run("models", "list", "--customization-type", "FINE_TUNING", "--json").stdout)
    assert [m["modelId"] for m in data["modelSummaries"]] == [DEFAULT_MODEL_ID]
    assert data["modelSummaries"][0]["customizationsSupported"] == ["FINE_TUNING", "CONTINUED_PRE_TRAINING"]


@pytest.mark.slow  # CLI processes, invoke loads the model
def test_add_alias_get_and_invoke(home, tiny_model_dir):
    run("models", "add", "tiny", str(tiny_model_dir), "--provider", "Tests")
    run("models", "alias", "meta.llama2-13b-chat-v1", "tiny")
    detail = json.loads(run("models", "get", "meta.llama2-13b-chat-v1", "--json").stdout)["modelDetails"]
    assert detail["providerName"] == "Meta" and detail["aliasOf"] == "tiny" and detail["bodyFormat"] == "llama2"

    streamed = run("invoke", "tiny", "The guest", "--raw", "--temperature", "0", "--max-tokens", "6", "--dtype", "float32")
    assert "6 generated tokens" in streamed.stderr
    as_json = json.loads(run("invoke", "tiny", "The guest", "--raw", "--temperature", "0", "--max-tokens", "6", "--dtype", "float32", "--json").stdout)
    # text-mode pipes turn "\r" and "\r\n" into "\n"; compare the visible text
    expected = as_json["text"].replace("\r\n", "\n").replace("\r", "\n")
    assert as_json["completion_tokens"] == 6 and streamed.stdout.strip() == expected.strip()

    body = json.dumps({"prompt": "<s>[INST] Hi [/INST]", "max_gen_len": 5, "temperature": 0})
    native = json.loads(run("invoke", "meta.llama2-13b-chat-v1", "--body", body, "--dtype", "float32").stdout)
    assert set(native) == {"generation", "prompt_token_count", "generation_token_count", "stop_reason"}
    assert native["generation_token_count"] <= 5


@pytest.mark.slow  # a CLI process each
@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("models", "get", "nope.model-v1"), 3, "no foundation model 'nope.model-v1'"),
        (("invoke", "nope.model-v1", "hi"), 3, "tuneforge custom-models list"),
        (("models", "add", "x", "/definitely/not/here"), 3, "does not exist"),
        (("models", "add", "x", "Org/some-model"), 1, "HF_HUB_OFFLINE"),
        (("invoke", DEFAULT_MODEL_ID, "--body", '{"prompt": "x", "max_gen_len": 99999}'), 2, "max_gen_len"),
        (("invoke", DEFAULT_MODEL_ID, "hi", "--temperature", "5"), 2, "temperature"),
    ],
)
def test_errors_say_what_to_do(home, args, code, needle):
    proc = run(*args, check=False)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # CLI processes
def test_jobs_create_refuses_a_missing_data_file_naming_the_flag(home, tiny_model_dir, tmp_path):
    run("models", "add", "tiny", str(tiny_model_dir))
    missing = tmp_path / "never-written.jsonl"
    proc = run("jobs", "create", "nodata", "-m", "tiny", "-t", str(missing), check=False)
    assert proc.returncode == 2 and "[--training-data]" in proc.stderr and str(missing) in proc.stderr, proc.stderr
    train = tmp_path / "train.jsonl"
    train.write_text('{"prompt": "a", "completion": "b"}\n')
    proc = run("jobs", "create", "noval", "-m", "tiny", "-t", str(train), "--validation-data", str(missing), check=False)
    assert proc.returncode == 2 and "[--validation-data]" in proc.stderr and str(missing) in proc.stderr, proc.stderr
    assert json.loads(run("jobs", "list", "--json").stdout)["modelCustomizationJobSummaries"] == []  # nothing created
