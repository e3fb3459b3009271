"""Preference records (DPO pairs): parsed and validated line by line like the other formats, on real files with a
real word-level tokenizer (one token per word), and accepted by /v1/files' fine-tune check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.data import DatasetKind, load_token_counter, read_records, validate_dataset
from tuneforge.data.records import CHAT_TOKENS_PER_CONVERSATION, CHAT_TOKENS_PER_MESSAGE, Form, parse_line
from tuneforge.errors import InvalidInput
from tuneforge.files.checks import Purpose, check_file, fine_tune_kind
from tuneforge.training.lengths import RecordLimit

PT = DatasetKind.PREFERENCE_TUNING
PAIR = {"prompt": "what is the capital of france", "chosen": "paris", "rejected": "the capital is lyon"}


def openai_pair(chosen: str = "paris", rejected: str = "lyon", **overrides) -> dict:
    record = {"input": {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "capital of france"}],
                        "tools": [], "parallel_tool_calls": True},
              "preferred_output": [{"role": "assistant", "content": chosen}],
              "non_preferred_output": [{"role": "assistant", "content": rejected}]}
    record.update(overrides)
    return record


def parse(record: dict, line: int = 7):
    return parse_line(json.dumps(record).encode(), line, PT)


def write(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def count(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["what is the capital of france paris lyon"], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    path = tmp_path_factory.mktemp("tokenizer")
    tok.save(str(path / "tokenizer.json"))
    return load_token_counter(path)


def test_both_forms_are_normalised():
    ours = parse(PAIR)
    assert (ours.form, ours.problems, ours.record) == (Form.PREFERENCE, [], PAIR)
    theirs = parse(openai_pair())
    assert theirs.form is Form.OPENAI_PREFERENCE and theirs.problems == []
    assert theirs.record == {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "capital of france"}],
                             "chosen": "paris", "rejected": "lyon"}


@pytest.mark.parametrize(("record", "field", "needle"), [
    ({**PAIR, "rejected": " paris "}, "rejected", "same text as chosen"),
    ({"prompt": "q", "chosen": "a"}, "rejected", "missing"),
    ({"chosen": "a", "rejected": "b"}, "prompt", "missing"),
    ({**PAIR, "chosen": 3}, "chosen", "must be a string, got number"),
    ({**PAIR, "chosen": "  "}, "chosen", "must not be empty"),
    ({**PAIR, "score": 1}, "score", "unknown key"),
    (openai_pair(rejected="paris"), "non_preferred_output[0].content", "same text as preferred_output[0].content"),
    (openai_pair(preferred_output=[]), "preferred_output", "exactly one assistant message"),
    (openai_pair(non_preferred_output=[{"role": "user", "content": "x"}]), "non_preferred_output[0].role", "must be assistant"),
    ({k: v for k, v in openai_pair().items() if k != "input"}, "input", "missing"),
    (openai_pair(input={"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}),
     "input.messages", "must end with a user turn"),
    (openai_pair(input={"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function"}]}), "input.tools", "unknown key"),
])
def test_bad_pairs_name_their_line_and_field(record, field, needle):
    parsed = parse(record)
    assert parsed.record is None
    assert any(p.line == 7 and p.field == field and needle in p.message for p in parsed.problems), [str(p) for p in parsed.problems]


def test_the_validator_counts_both_sequences_and_limits_the_longer(tmp_path, count):
    good = write(tmp_path / "pairs.jsonl", [PAIR, PAIR])
    report = validate_dataset(good, PT, count_tokens=count)
    # one sequence: prompt 6 + answer + EOS; chosen 1 word, rejected 4 words
    assert report.ok and report.records == 2
    assert report.max_record_tokens == 6 + 4 + 1
    assert report.tokens == 2 * ((6 + 1 + 1) + (6 + 4 + 1))
    limited = validate_dataset(good, PT, count_tokens=count, limit=RecordLimit(10, "the job's maxSequenceLength", "shorten it"))
    assert limited.problem_count == 2 and "line 1" in str(limited.problems[0]) and "the longer answer" in str(limited.problems[0])
    chat = validate_dataset(write(tmp_path / "openai.jsonl", [openai_pair()]), PT, count_tokens=count)
    # the conversation's two messages and the answer each get the estimated template
    assert chat.ok and chat.max_record_tokens == 2 + 3 + 1 + 3 * CHAT_TOKENS_PER_MESSAGE + CHAT_TOKENS_PER_CONVERSATION
    assert list(read_records(good, PT)) == [PAIR, PAIR]


def test_every_bad_line_is_reported_and_forms_are_not_mixed(tmp_path, count):
    bad = write(tmp_path / "bad.jsonl", [PAIR, {"prompt": "q", "chosen": "same", "rejected": "same"}, "not json",
                                         {"prompt": "q", "chosen": "a"}, openai_pair()])
    report = validate_dataset(bad, PT, count_tokens=count)
    lines = {p.line for p in report.problems}
    assert lines == {2, 3, 4, 5}
    assert "uses the OpenAI preference" in report.failure_message()


def test_uploaded_fine_tune_files_may_hold_preference_pairs(tmp_path):
    pairs = write(tmp_path / "pairs.jsonl", [PAIR, openai_pair()][:1] * 3)
    assert fine_tune_kind(pairs) is PT and check_file(pairs, Purpose.FINE_TUNE, "pairs.jsonl") == 3
    theirs = write(tmp_path / "openai.jsonl", [openai_pair()] * 2)
    assert check_file(theirs, Purpose.FINE_TUNE, "openai.jsonl") == 2
    same = write(tmp_path / "same.jsonl", [PAIR, {**PAIR, "rejected": "paris"}])
    with pytest.raises(InvalidInput) as err:
        check_file(same, Purpose.FINE_TUNE, "same.jsonl")
    assert "line 2 [rejected]" in err.value.message and "same text as chosen" in err.value.message
    chat = write(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}])
    assert fine_tune_kind(chat) is DatasetKind.FINE_TUNING
