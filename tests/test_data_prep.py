"""Data preparation: tables and documents -> customization records, and `tuneforge data ...` as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tuneforge.data import DatasetKind, load_token_counter, validate_dataset
from tuneforge.data.from_docs import documents_to_records
from tuneforge.data.from_table import PromptTemplate, decode_escapes, load_table, table_to_records, write_jsonl
from tuneforge.errors import InvalidInput, NotFound, Unavailable

SHARED = Path(os.environ.get("TUNEFORGE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
DIALOGSUM = SHARED / "dialogsum"
BOOK = SHARED / "rlhf-book" / "chapters"
BOOK_PDF = SHARED / "pdf" / "rlhf-book-ch01-14.pdf"
needs_dialogsum = pytest.mark.skipif(not (DIALOGSUM / "dev.jsonl").is_file(), reason="DialogSum not found under ../shared/data")
needs_book = pytest.mark.skipif(not BOOK_PDF.is_file(), reason="the rlhf-book PDF not found under ../shared/data/pdf")
REFERENCE_PROMPT = "Summarize the simplest and most interesting part of the following conversation.\\n\\n{dialogue}\\n\\nSummary: "


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))  # datasets caches loaded files


def run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "tuneforge", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    if check and proc.returncode != 0:
        raise AssertionError(f"tuneforge {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---- templates and tables


def test_escapes_are_decoded_but_other_backslashes_and_unicode_stay():
    assert decode_escapes(r"a\n\nb\tc\\n") == "a\n\nb\tc\\n"
    assert decode_escapes(r"Résumé \d \u00e9") == r"Résumé \d \u00e9"


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{dialog} and {x}", "uses {dialog}, {x}, which the table does not have; its columns are: id, dialogue, summary"),
        ("no field at all", "uses no column"),
        ("{0}", "plain column names"),
        ("{dialogue.upper}", "plain column names"),
        ("{dialogue:>10}", "format spec"),
        ("unbalanced { brace", "not valid"),
    ],
)
def test_template_fields_are_checked_against_the_columns(template, needle):
    with pytest.raises(InvalidInput) as err:
        PromptTemplate.parse(template, columns=["id", "dialogue", "summary"])
    assert needle in err.value.message and err.value.field == "--prompt-template"


def test_table_rows_become_records_in_order_with_skips_reported(tmp_path):
    source = tmp_path / "rows.csv"
    source.write_text("id,text,label\n1,hello {there},A\n2,second,\n3,third,C\n4,fourth,D\n5,fifth,E\n")
    table = load_table(str(source))
    template = PromptTemplate.parse("Say {{it}}: {text}\n->", columns=table.column_names)
    out = table_to_records(table, template, completion_field="label", select=4, validation_fraction=0.34)
    # row 1 (0-based) has an empty label: skipped and named; 3 records left, one held out
    assert out.skipped == [(1, "label is empty")] and out.skipped_count == 1
    assert out.training == [{"prompt": "Say {it}: hello {there}\n->", "completion": "A"},
                            {"prompt": "Say {it}: third\n->", "completion": "C"}]
    assert out.validation == [{"prompt": "Say {it}: fourth\n->", "completion": "D"}]
    with pytest.raises(InvalidInput, match="columns are: id, text, label"):
        table_to_records(table, template, completion_field="summary")


def test_sample_and_shuffle_are_seeded_and_keep_every_row(tmp_path):
    source = tmp_path / "rows.jsonl"
    write_jsonl(({"q": f"question {i}", "a": f"answer {i}"} for i in range(50)), source)
    table = load_table(str(source))
    template = PromptTemplate.parse("{q}", columns=table.column_names)
    first = table_to_records(table, template, completion_field="a", sample=10, seed=7)
    again = table_to_records(table, template, completion_field="a", sample=10, seed=7)
    other = table_to_records(table, template, completion_field="a", sample=10, seed=8)
    assert first.training == again.training and first.training != other.training and len(first.training) == 10
    shuffled = table_to_records(table, template, completion_field="a", shuffle=True, seed=1).training
    assert shuffled != table_to_records(table, template, completion_field="a").training
    assert sorted(r["prompt"] for r in shuffled) == sorted(f"question {i}" for i in range(50))
    with pytest.raises(InvalidInput, match="more than the 50 rows"):
        table_to_records(table, template, completion_field="a", sample=51)


def test_saved_dataset_directories_and_parquet_load(tmp_path):
    from datasets import Dataset

    data = Dataset.from_dict({"document": ["a b c", "d e f"], "summary": ["abc", "def"]})
    data.save_to_disk(str(tmp_path / "saved"))
    data.to_parquet(str(tmp_path / "rows.parquet"))
    for source in (tmp_path / "saved", tmp_path / "rows.parquet"):
        table = load_table(str(source))
        assert table.column_names == ["document", "summary"] and len(table) == 2


def test_sources_that_cannot_be_read_say_what_to_pass(tmp_path):
    with pytest.raises(NotFound, match="no such file"):
        load_table(str(tmp_path / "missing.jsonl"))
    with pytest.raises(Unavailable, match="HF_HUB_OFFLINE is set.*pass a local"):
        load_table("knkarthick/dialogsum", offline=True)
    (tmp_path / "plain").mkdir()
    with pytest.raises(InvalidInput, match="not a saved dataset"):
        load_table(str(tmp_path / "plain"))
    (tmp_path / "broken.jsonl").write_text('{"a": 1}\n{not json\n')
    with pytest.raises(InvalidInput, match="cannot read .* as JSON"):
        load_table(str(tmp_path / "broken.jsonl"))


# ---- documents


def test_documents_are_chunked_within_the_token_limit_with_overlap(tmp_path, tiny_model_dir):
    count = load_token_counter(tiny_model_dir)
    sentences = [f"Sentence number {i} says the guest checks in at the hotel." for i in range(60)]
    (tmp_path / "notes.md").write_text("---\ntitle: metadata\n---\n# Hotel\n\n" + " ".join(sentences) + "\n")
    out = documents_to_records([tmp_path], count_tokens=count, max_tokens=96, overlap_tokens=32)  # a sentence is 27 tokens
    texts = [r["input"] for r in out.records]
    assert len(texts) > 3 and all(n <= 96 for n in count(texts))
    assert "metadata" not in texts[0] and texts[0].startswith("Hotel")
    # consecutive chunks share whole sentences (the overlap), and together they hold every sentence
    assert all(a.split(". ")[-1].rstrip(".") in b for a, b in zip(texts, texts[1:]))
    assert all(any(s in t for t in texts) for s in sentences)
    assert out.documents[0].chunks == len(texts)


def test_unreadable_documents_are_all_named_and_nothing_is_returned(tmp_path, tiny_model_dir):
    (tmp_path / "good.txt").write_text("Fine text.")
    (tmp_path / "bad.pdf").write_bytes(b"not a pdf at all")
    (tmp_path / "empty.txt").write_text("   ")
    with pytest.raises(InvalidInput) as err:
        documents_to_records([tmp_path / "good.txt", tmp_path / "bad.pdf", tmp_path / "empty.txt"],
                             count_tokens=load_token_counter(tiny_model_dir), max_tokens=64)
    assert "2 of 3 document(s)" in err.value.message and "bad.pdf" in err.value.message and "empty.txt" in err.value.message


@needs_book
@pytest.mark.slow  # parses a 14-chapter PDF
def test_the_book_pdf_comes_out_clean(tiny_model_dir):
    out = documents_to_records([BOOK_PDF], count_tokens=load_token_counter(tiny_model_dir), max_tokens=500, overlap_tokens=50)
    text = "\n".join(r["input"] for r in out.records)
    assert out.documents[0].pages == 82
    # Chromium's running header and footer (title, date, "n/82") are gone; words broken at line ends are whole
    assert "/82" not in text and "Reinforcement learning from human feedback" in text.replace("Reinforcement Learning", "Reinforcement learning")
    assert "reinforce- ment" not in text and "preference data" in text


# ---- the CLI


@needs_dialogsum
@pytest.mark.slow  # several CLI processes
def test_cli_from_hf_writes_the_reference_prompt_and_validates(home, tmp_path, tiny_model_dir):
    run("models", "add", "tiny", str(tiny_model_dir))
    out, val = tmp_path / "train.jsonl", tmp_path / "val.jsonl"
    proc = run("data", "from-hf", str(DIALOGSUM / "dev.jsonl"), "--prompt-template", REFERENCE_PROMPT, "--completion-field",
               "summary", "--select", "20", "--validation-fraction", "0.1", "--out", str(out), "--validation-out", str(val))
    assert "wrote 18 training records" in proc.stdout
    records, held_out = read_jsonl(out), read_jsonl(val)
    first = json.loads((DIALOGSUM / "dev.jsonl").read_text().splitlines()[0])
    assert records[0] == {"prompt": "Summarize the simplest and most interesting part of the following conversation.\n\n"
                                    f"{first['dialogue']}\n\nSummary: ", "completion": first["summary"].strip()}
    assert len(held_out) == 2 and held_out[-1]["completion"] == json.loads((DIALOGSUM / "dev.jsonl").read_text().splitlines()[19])["summary"].strip()

    # the same tiny model with a 4,096-token context: fine-tuning's training length grows to the longest record
    wide = tmp_path / "tiny-4k"
    shutil.copytree(tiny_model_dir, wide)
    config = json.loads((wide / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 4096}))
    run("models", "add", "tiny-4k", str(wide))
    summary = json.loads(run("data", "validate", str(out), "--model", "tiny-4k", "--json").stdout)
    assert summary["ok"] and summary["records"] == 18 and summary["steps"] == 3
    assert summary["maxSequenceLength"] == max(1024, summary["max_record_tokens"])
    too_long = run("data", "validate", str(out), "--model", "tiny", "--max-sequence-length", "4096", check=False)
    assert too_long.returncode == 2 and "--max-sequence-length 4,096 is longer than tiny's context of 256" in too_long.stderr
    # the tiny model's context is 256 tokens: DialogSum prompts do not fit, and every line says so
    short = run("data", "validate", str(out), "--model", "tiny", check=False)
    assert short.returncode == 2 and "line 1: record is too long" in short.stdout and "problem(s)" in short.stdout
    assert "more than the model's context of 256 tokens" in short.stdout


@pytest.mark.slow  # several CLI processes
def test_cli_errors_name_the_flag(home, tmp_path):
    source = tmp_path / "rows.jsonl"
    write_jsonl([{"dialogue": "hi", "summary": "greeting"}], source)
    cases = [
        (("--prompt-template", "{dialog}", "--completion-field", "summary"), 2, "[--prompt-template]: the prompt template uses {dialog}"),
        (("--prompt-template", "{dialogue}", "--completion-field", "sumary"), 2, "columns are: dialogue, summary"),
        (("--prompt-template", "{dialogue}", "--completion-field", "summary", "--validation-fraction", "0.5"), 2, "needs --validation-out"),
    ]
    for args, code, needle in cases:
        proc = run("data", "from-hf", str(source), "--out", str(tmp_path / "o.jsonl"), *args, check=False)
        assert proc.returncode == code and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    offline = run("data", "from-hf", "someone/dataset", "--prompt-template", "{x}", "--completion-field", "y", "--out", "o.jsonl", check=False)
    assert offline.returncode == 1 and "HF_HUB_OFFLINE" in offline.stderr


@pytest.mark.slow  # several CLI processes
def test_cli_from_docs_and_validate_continued_pre_training(home, tmp_path, tiny_model_dir):
    run("models", "add", "tiny", str(tiny_model_dir))
    doc = tmp_path / "book.txt"
    doc.write_text("\n\n".join(f"Paragraph {i}. The guest checks in at the hotel and pays with a credit card." for i in range(80)))
    out = tmp_path / "cpt.jsonl"
    result = json.loads(run("data", "from-docs", str(doc), "--model", "tiny", "--out", str(out), "--json").stdout)
    # the tiny model's context is 256: chunks of at most 255 tokens leave room for the EOS
    assert result["maxTokens"] == 255 and result["records"] == len(read_jsonl(out)) > 1
    counts = load_token_counter(tiny_model_dir)([r["input"] for r in read_jsonl(out)])
    assert max(counts) <= 255
    report = validate_dataset(out, DatasetKind.CONTINUED_PRE_TRAINING, count_tokens=load_token_counter(tiny_model_dir), max_sequence_length=256)
    assert report.ok, report.problems
    assert "valid" in run("data", "validate", str(out), "--kind", "continued-pre-training", "--model", "tiny").stdout
    wrong = run("data", "validate", str(out), "--kind", "fine-tuning", "--model", "tiny", check=False)
    assert wrong.returncode == 2 and "line 1 [input]: unknown key" in wrong.stdout


def test_training_length_is_defined_once():
    from tuneforge.evaluation import run as evaluation_run
    from tuneforge.training import lengths, trainer

    assert trainer.DEFAULT_MAX_LEN is lengths.DEFAULT_MAX_LEN and evaluation_run.DEFAULT_MAX_LEN is lengths.DEFAULT_MAX_LEN
    assert not hasattr(__import__("tuneforge.data.model_tokens", fromlist=["x"]), "TRAINING_MAX_LEN")


@pytest.mark.slow
def test_the_default_model_is_materialized_for_its_tokenizer_without_torch_here(home, tmp_path):
    from tuneforge.catalog.builtin import DEFAULT_MODEL_ID
    from tuneforge.inference.checkpoint import COMPLETE_MARKER

    data = tmp_path / "cpt.jsonl"
    write_jsonl([{"input": "Reinforcement learning from human feedback, in one line."}], data)
    summary = json.loads(run("data", "validate", str(data), "--kind", "continued-pre-training", "--json").stdout)
    checkpoint = home / "models" / DEFAULT_MODEL_ID
    assert (checkpoint / COMPLETE_MARKER).is_file()
    # the text's tokens + EOS; SmolLM2's context is 8192, so the training length is the trainer's 1024
    expected = load_token_counter(checkpoint)(["Reinforcement learning from human feedback, in one line."])[0] + 1
    assert summary["ok"] and summary["tokens"] == expected and summary["maxSequenceLength"] == 1024
