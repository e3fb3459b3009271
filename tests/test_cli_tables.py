"""Every table the CLI prints, in an 80-column terminal: no line is wider than 80, no cell is split across
lines or cut short (ids, names and ARNs appear whole), and `--wide` shows the columns left out, each cell on one
line. The real `tuneforge` command runs in subprocesses on one data directory filled the way a user fills it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.cells import cell_len

from tuneforge.catalog.builtin import DEFAULT_MODEL_ID

WIDTH = 80
JOB = "hotel-summaries-v2"
ALIAS = "meta.llama2-13b-chat-v1"


def tf(home: Path, *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "tuneforge", *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "TUNEFORGE_HOME": str(home), "COLUMNS": str(WIDTH)})
    assert done.returncode == 0, f"tuneforge {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def fits(out: str) -> list[str]:
    """The output's lines, after checking none is wider than the terminal and nothing was cut with "…"."""
    lines = out.splitlines()
    assert lines, "printed nothing"
    assert [line for line in lines if cell_len(line) > WIDTH] == [], out
    return lines


def whole(lines: list[str], *values: str) -> None:
    for value in values:
        assert any(value in line for line in lines), f"{value!r} is not on one line:\n" + "\n".join(lines)


def header(lines: list[str], *names: str) -> None:
    """The header row (the first with ┃ separators) has these column names."""
    row = next(line for line in lines if "┃" in line)
    assert all(name in row for name in names), row


def row_with(lines: list[str], value: str) -> str:
    return next(line for line in lines if value in line)


def detail(lines: list[str]) -> dict[str, str]:
    """A field/value table read back: a value folded over several lines is joined again."""
    fields: dict[str, str] = {}
    name = ""
    for line in lines:
        if not line.startswith("│"):
            continue
        key, value = (part.strip() for part in line.strip("│").split("│"))
        name = key or name
        fields[name] = fields.get(name, "") + value if not key else value
    return fields


@dataclass
class Filled:
    home: Path
    watch: str  # what `jobs get --watch` printed
    sync: str  # and `kb sync`
    key_ids: list[str]
    custom_arn: str


@pytest.fixture(scope="module")
def filled(tmp_path_factory, tiny_model_dir, tiny_embedder_dir) -> Filled:
    """Models and an alias, a finished fine-tuning job and its custom model, a deployment, two keys, a synced
    knowledge base and audit events, with names and ids as long as users give them."""
    root = tmp_path_factory.mktemp("tables")
    home = root / "home"
    tf(home, "models", "add", "tiny", str(tiny_model_dir), "--provider", "Tests")
    tf(home, "models", "add", "tiny.embedder", str(tiny_embedder_dir), "--embedding")
    tf(home, "models", "alias", ALIAS, DEFAULT_MODEL_ID)  # its target is a 38-character id

    train = root / "train.jsonl"
    train.write_text("".join(json.dumps({"prompt": f"#Person1#: Room {500 + i}, please.\n\nSummary: ",
                                         "completion": f"A guest gets room {500 + i}."}) + "\n" for i in range(8)))
    tf(home, "jobs", "create", JOB, "-m", "tiny", "-t", str(train), "-p", "epochCount=1", "-p", "batchSize=4",
       "-p", "maxSequenceLength=128")
    watch = tf(home, "jobs", "get", JOB, "--watch")  # returns when the job has ended
    tf(home, "deployments", "create", "hotel-summaries-endpoint", "-m", JOB)  # stays Creating: no server runs
    tf(home, "keys", "create", "--name", "alice-laptop")
    tf(home, "keys", "create", "--name", "ci-read-only", "--read-only")

    docs = root / "docs"
    docs.mkdir()
    (docs / "brokers.md").write_text("# Brokers\n\nEvery broker or dealer must register with the Commission before "
                                     "trading on an exchange, and must keep the records the Commission prescribes.")
    (docs / "book.txt").write_text("\n\n".join(f"Paragraph {i}. The guest checks in at the hotel and pays with a credit card."
                                               for i in range(12)))
    tf(home, "kb", "create", "exchange-rules", "--embedding-model", "tiny.embedder")
    tf(home, "kb", "add-source", "exchange-rules", str(docs))
    sync = tf(home, "kb", "sync", "exchange-rules")

    # audit events are what the server records for each mutating call; here the same log is written directly
    from tuneforge.security.audit import AuditLog
    from tuneforge.db import close_databases, open_database
    from tuneforge.settings import load_settings

    key_ids = [k["accessKeyId"] for k in json.loads(tf(home, "keys", "list", "--json"))["accessKeys"]]
    custom_arn = json.loads(tf(home, "custom-models", "get", JOB, "--json"))["modelArn"]
    log = AuditLog(open_database(load_settings(home=home).database_url))
    log.record(access_key_id=key_ids[0], service="bedrock", operation="TagResource", resource=custom_arn, status_code=200)
    log.record(access_key_id=None, service="bedrock", operation="UpdateProvisionedModelThroughput",
               resource="hotel-summaries-endpoint-old", status_code=404, error_code="ResourceNotFoundException")
    close_databases()
    return Filled(home, watch, sync, key_ids, custom_arn)


def test_models(filled):
    home = filled.home
    lines = fits(tf(home, "models", "list"))
    assert "…" not in "\n".join(lines)
    whole(lines, DEFAULT_MODEL_ID, "sentence-transformers.all-minilm-l6-v2", "tiny.embedder", ALIAS)
    header(lines, "Model ID", "Output", "Tuning", "Body")
    assert "FT, CPT" in row_with(lines, DEFAULT_MODEL_ID) and "EMBEDDING" in row_with(lines, "tiny.embedder")
    whole(lines, f"alias {ALIAS} → {DEFAULT_MODEL_ID}")  # the caption says what an alias serves

    wide = tf(home, "models", "list", "--wide").splitlines()
    header(wide, "Provider", "Customizations", "Inference", "Alias of")
    alias = row_with(wide, ALIAS)
    assert "Meta" in alias and DEFAULT_MODEL_ID in alias and "FINE_TUNING, CONTINUED_PRE_TRAINING" in alias

    fields = detail(fits(tf(home, "models", "get", ALIAS)))
    assert fields["modelArn"] == f"arn:aws:bedrock:us-east-1::foundation-model/{ALIAS}"  # folded, not cut
    assert fields["aliasOf"] == DEFAULT_MODEL_ID


def test_jobs_and_custom_models(filled):
    home = filled.home
    lines = fits(tf(home, "jobs", "list"))
    assert "…" not in "\n".join(lines)
    assert all(cell in row_with(lines, JOB) for cell in ("Completed", "FT"))
    wide = tf(home, "jobs", "list", "--wide").splitlines()
    header(wide, "Base model", "Custom model")
    assert "FINE_TUNING" in row_with(wide, JOB) and "tiny" in row_with(wide, JOB)

    progress = detail(fits(filled.watch))
    assert progress["custom model"] == filled.custom_arn and progress["stages"].count("=Completed") == 3

    lines = fits(tf(home, "custom-models", "list"))
    assert "…" not in "\n".join(lines)
    header(lines, "Name", "Status", "Type", "Training loss", "Created")
    assert "Active" in row_with(lines, JOB)
    header(tf(home, "custom-models", "list", "--wide").splitlines(), "Base model")

    fields = detail(fits(tf(home, "custom-models", "get", JOB)))
    assert fields["modelArn"] == filled.custom_arn and fields["jobName"] == JOB


def test_deployments(filled):
    home = filled.home
    lines = fits(tf(home, "deployments", "list"))
    assert "…" not in "\n".join(lines)
    assert "Creating" in row_with(lines, "hotel-summaries-endpoint")
    model_id = filled.custom_arn.rsplit("/", 1)[-1]
    wide = tf(home, "deployments", "list", "--wide").splitlines()
    header(wide, "Model")
    assert model_id in row_with(wide, "hotel-summaries-endpoint")

    fields = detail(fits(tf(home, "deployments", "get", "hotel-summaries-endpoint")))
    assert fields["provisionedModelArn"].startswith("arn:aws:bedrock:us-east-1:000000000000:provisioned-model/")
    assert fields["modelArn"] == filled.custom_arn


def test_keys_and_audit(filled):
    home = filled.home
    lines = fits(tf(home, "keys", "list"))
    assert "…" not in "\n".join(lines)
    whole(lines, *filled.key_ids)
    assert "read-only" in row_with(lines, "ci-read-only")
    header(tf(home, "keys", "list", "--wide").splitlines(), "Created", "Revoked")

    lines = fits(tf(home, "audit"))
    whole(lines, filled.key_ids[0], "TagResource", "(no auth)")
    # 32 characters do not fit beside the key id: the operation is shortened, the rest stays whole
    assert "UpdateProvisionedModel" in row_with(lines, "(no auth)") and "…" in row_with(lines, "(no auth)")
    wide = tf(home, "audit", "--wide").splitlines()
    header(wide, "Resource")
    assert all(cell in row_with(wide, "(no auth)") for cell in
               ("UpdateProvisionedModelThroughput", "404 ResourceNotFoundException", "hotel-summaries-endpoint-old"))
    assert filled.custom_arn in row_with(wide, "TagResource")


def test_knowledge_bases(filled):
    home = filled.home
    assert detail(fits(filled.sync))["NewDocumentsIndexed"] == "2"
    lines = fits(tf(home, "kb", "list"))
    assert "…" not in "\n".join(lines)
    assert "ACTIVE" in row_with(lines, "exchange-rules")
    wide = tf(home, "kb", "list", "--wide").splitlines()
    header(wide, "Embedding model")
    assert "tiny.embedder" in row_with(wide, "exchange-rules")

    lines = fits(tf(home, "kb", "get", "exchange-rules"))
    assert "…" not in "\n".join(lines)
    assert "2 indexed" in row_with(lines, "COMPLETE")
    wide = tf(home, "kb", "get", "exchange-rules", "--wide").splitlines()
    header(wide, "Location", "Chunking")
    whole(wide, "file://")

    # the source's file name (its URI needs --wide); the passage wraps
    lines = fits(tf(home, "kb", "retrieve", "exchange-rules", "broker register", "-k", "2", "--hybrid"))
    whole(lines, "brokers.md", "book.txt")


def test_evaluation_and_data_tables(filled):
    home, root = filled.home, filled.home.parent
    lines = fits(tf(home, "eval", "rouge", str(root / "train.jsonl"), "-m", "tiny", "-m", JOB, "--rows", "1",
                    "--max-tokens", "2", "--dtype", "float32"))
    assert "…" not in "\n".join(lines)
    header(lines, "Model", "ROUGE-1", "ROUGE-2", "ROUGE-L")
    whole(lines, JOB)

    wide = tf(home, "eval", "perplexity", str(root / "docs" / "book.txt"), "-m", "tiny", "-m", JOB, "--dtype", "float32",
              "--wide").splitlines()
    header(wide, "Perplexity", "Loss (nats/token)", "Window", "Seconds")
    whole(wide, JOB)

    # relative paths, as a user types them
    lines = fits(tf(home, "data", "from-docs", "book.txt", "brokers.md", "-m", "tiny", "--out", str(root / "cpt.jsonl"),
                    cwd=root / "docs"))
    header(lines, "Document", "Pages", "Chunks", "Tokens")
    whole(lines, "book.txt", "brokers.md")
