"""The demo's own data: the dialogue generator, the almanac for continued pre-training and the rulebooks for
the knowledge base. Fast: no model, only text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from demo import dialogues
from tuneforge.documents.parsing import SIDECAR_SUFFIX, load_sidecar

DATA = Path(__file__).resolve().parent.parent / "demo" / "data"
TITLES = re.compile(r"\b(Mr|Mrs|Ms|Dr)\.")
SENTENCE_END = re.compile(r"[.!?](\s|$)")
TURN = re.compile(r"^#Person([12])#: \S.*$")


def sentences(text: str) -> int:
    return len(SENTENCE_END.findall(TITLES.sub(r"\1", text)))


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return dialogues.generate(1000, seed=0)


def test_sentence_counter_tells_one_sentence_from_two() -> None:
    assert sentences("Dr. Keller sees #Person2# on Monday at 8:05 for 47.50 dollars.") == 1
    assert sentences("#Person1# books a table. #Person2# agrees.") == 2


def test_generate_is_deterministic_per_seed() -> None:
    assert dialogues.generate(120, seed=7) == dialogues.generate(120, seed=7)
    assert dialogues.generate(120, seed=7) != dialogues.generate(120, seed=8)
    assert dialogues.generate(0) == []
    with pytest.raises(ValueError, match="n must be"):
        dialogues.generate(-1)


def test_rows_are_well_formed_dialogues_with_one_sentence_summaries(rows: list[dict]) -> None:
    for row in rows:
        assert set(row) == {"dialogue", "summary", "topic"}
        assert all(row[key].strip() for key in row), row
        turns = row["dialogue"].split("\n")
        assert 4 <= len(turns) <= 10, row["dialogue"]
        speakers = [TURN.match(turn) for turn in turns]
        assert all(speakers), row["dialogue"]
        assert [int(m.group(1)) for m in speakers] == [1 + i % 2 for i in range(len(turns))]  # alternate
        assert "{" not in row["dialogue"] + row["summary"], row  # every slot filled
        assert row["summary"][0].isupper() or row["summary"].startswith("#"), row["summary"]
        assert row["summary"].endswith(".") and sentences(row["summary"]) == 1, row["summary"]


def test_families_are_all_covered_and_rows_are_diverse(rows: list[dict]) -> None:
    assert len(dialogues.FAMILIES) >= 15
    assert {row["topic"] for row in rows} == set(dialogues.FAMILIES)
    figures = dialogues.describe(rows)
    assert figures["distinct_dialogues"] == 1000
    assert figures["distinct_summaries"] >= 800
    assert 50 <= figures["mean_dialogue_tokens"] <= 200 and 10 <= figures["mean_summary_tokens"] <= 40


def test_showcase_is_the_held_out_hotel_check_in(rows: list[dict]) -> None:
    showcase = dialogues.SHOWCASE
    assert showcase["topic"] == "hotel check-in"
    for fact in ("John Sandals", "MasterCard or VISA", "room 507"):
        assert fact in showcase["dialogue"]
    assert 6 <= len(showcase["dialogue"].split("\n")) <= 8
    # the demo's evaluation dialogue is never trained on: not even its guest's name appears
    assert all(row["dialogue"] != showcase["dialogue"] for row in rows)
    assert not any("Sandals" in row["dialogue"] for row in dialogues.generate(3000, seed=1))


def test_write_jsonl_uses_the_reference_prompt(tmp_path: Path, rows: list[dict]) -> None:
    path = dialogues.write_jsonl(tmp_path / "train" / "dialogues.jsonl", rows[:25])
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 25
    for line, row in zip(lines, rows[:25], strict=True):
        assert set(line) == {"prompt", "completion"}
        assert line["prompt"] == (
            "Summarize the simplest and most interesting part of the following conversation.\n\n"
            f"{row['dialogue']}\n\nSummary: "
        )
        assert line["completion"] == row["summary"]


def test_almanac_has_a_held_out_chapter_and_answerable_questions() -> None:
    questions = json.loads((DATA / "almanac-questions.json").read_text(encoding="utf-8"))
    text = (DATA / questions["document"]).read_text(encoding="utf-8")
    assert text.count(questions["held_out_heading"] + "\n") == 1
    train, held_out = text.split(questions["held_out_heading"])
    assert 5000 <= len(train.split()) and 600 <= len(held_out.split()) <= 1000
    assert len(questions["questions"]) == 3
    for item in questions["questions"]:
        assert item["question"].endswith("?") and item["answer"]
        for keyword in item["keywords"]:
            assert keyword in train, (item["question"], keyword)  # answerable without the held-out part


def test_rulebooks_have_bedrock_sidecars_and_the_demo_citations_exist() -> None:
    rules = DATA / "rules"
    documents = sorted(rules.glob("*.md"))
    assert 4 <= len(documents) <= 6
    for document in documents:
        assert 350 <= len(document.read_text(encoding="utf-8").split()) <= 900, document.name
        sidecar = document.with_name(document.name + SIDECAR_SUFFIX)
        body = json.loads(sidecar.read_text(encoding="utf-8"))
        assert set(body) == {"metadataAttributes"}
        attributes = load_sidecar(sidecar.read_bytes())  # the knowledge base's own reader accepts it
        assert set(attributes) == {"exchange", "rule", "effective_year"}
        assert attributes["exchange"] in document.read_text(encoding="utf-8")
        assert isinstance(attributes["effective_year"], int)
    demo = json.loads((DATA / "rules-questions.json").read_text(encoding="utf-8"))
    assert demo["question"] == "explain cube orders"
    assert demo["follow_up"] == "do other exchanges have an equivalent?"
    cited = [DATA / path for paths in demo["expected_citations"].values() for path in paths]
    assert cited and all(path.is_file() for path in cited)
    equivalent = (DATA / demo["expected_citations"]["follow_up"][0]).read_text(encoding="utf-8")
    assert "Cube Order" in equivalent  # the other exchange names cube orders as comparable


def test_no_demo_data_file_is_over_100_kb() -> None:
    files = [path for path in DATA.rglob("*") if path.is_file()]
    assert files
    for path in files:
        assert path.stat().st_size <= 100 * 1024, path
