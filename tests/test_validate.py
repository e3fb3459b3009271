"""The training-data validator on real files (local, file:// and S3 through moto) with a real tokenizer.

The tokenizer is a word-level `tokenizers` model saved to tokenizer.json: one token per word or punctuation
run, so expected token counts can be written down exactly.
"""

import json
import tracemalloc
from pathlib import Path

import pytest

from tuneforge import storage
from tuneforge.data import (
    CHAT_TOKENS_PER_MESSAGE,
    DataLimits,
    DatasetKind,
    Problem,
    ValidationReport,
    check_combined,
    load_token_counter,
    read_records,
    validate_dataset,
)
from tuneforge.data.validate import BATCH_LINES
from tuneforge.errors import InvalidInput, NotFound
from tuneforge.training.lengths import record_limit, training_length

FT = DatasetKind.FINE_TUNING
CPT = DatasetKind.CONTINUED_PRE_TRAINING
GOOD = {"prompt": "what is the capital of france", "completion": "paris"}  # 6 + 1 words, + EOS = 8 tokens


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = ["what is the capital of france", "paris", "summarize the conversation", "the hotel guest pays"]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["[UNK]", "</s>"]))
    tok.enable_truncation(max_length=4)  # saved in tokenizer.json; the counter must switch it off
    path = tmp_path_factory.mktemp("tokenizer")
    tok.save(str(path / "tokenizer.json"))
    return path


@pytest.fixture(scope="module")
def count(tokenizer_dir: Path):
    return load_token_counter(tokenizer_dir)


def write_lines(path: Path, lines: list[object]) -> Path:
    """Each item becomes one line: dicts as JSON, str as is, bytes raw."""
    out = bytearray()
    for item in lines:
        out += item if isinstance(item, bytes) else (item if isinstance(item, str) else json.dumps(item)).encode()
        out += b"\n"
    path.write_bytes(bytes(out))
    return path


def validate(path, count, kind=FT, max_sequence_length=64, **kwargs) -> ValidationReport:
    return validate_dataset(path, kind, count_tokens=count, max_sequence_length=max_sequence_length, **kwargs)


def test_valid_prompt_completion_file(tmp_path, count):
    path = write_lines(tmp_path / "train.jsonl", [GOOD, {"prompt": "summarize the conversation", "completion": "the guest pays"}])
    for uri in (str(path), path.as_uri()):
        report = validate(uri, count)
        assert report.ok, report.failure_message()
        assert (report.records, report.tokens, report.max_record_tokens, report.chat_form) == (2, 8 + 7, 8, False)
        assert report.bytes == path.stat().st_size
    assert list(read_records(path, FT)) == [GOOD, {"prompt": "summarize the conversation", "completion": "the guest pays"}]


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ('{"prompt": "a",', None, "invalid JSON"),
        ('["a", "b"]', None, "must be a JSON object, got array"),
        ({"prompt": "a"}, "completion", "missing"),
        ({"prompt": "a", "completion": "b", "weight": 2}, "weight", "unknown key"),
        ({"prompt": "a", "completion": 3}, "completion", "must be a string, got number"),
        ({"prompt": "a", "completion": None}, "completion", "must be a string, got null"),
        ({"prompt": " \t", "completion": "b"}, "prompt", "must not be empty"),
        ({"prompt": "", "completion": "b"}, "prompt", "must not be empty"),
        ("", None, "blank line"),
        ("   ", None, "blank line"),
        (b'{"prompt": "caf\xe9", "completion": "b"}', None, "not valid UTF-8"),
    ],
    ids=["json", "not-object", "missing", "unknown", "number", "null", "whitespace", "empty", "blank", "spaces", "utf8"],
)
def test_each_problem_names_its_line_and_field(tmp_path, count, line, field, words):
    report = validate(write_lines(tmp_path / "train.jsonl", [GOOD, line, GOOD]), count)
    assert report.problem_count == 1, report.problems
    problem = report.problems[0]
    assert (problem.line, problem.field) == (2, field)
    assert words in problem.message


def test_all_problems_of_one_line_are_reported(tmp_path, count):
    report = validate(write_lines(tmp_path / "train.jsonl", [{"completion": 7, "extra": "x"}]), count)
    assert [(p.line, p.field) for p in report.problems] == [(1, "prompt"), (1, "completion"), (1, "extra")]


def test_byte_order_mark_is_reported_and_the_line_still_checked(tmp_path, count):
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n" + json.dumps({"prompt": "a"}).encode() + b"\n")
    report = validate(path, count)
    assert [(p.line, p.field) for p in report.problems] == [(1, None), (2, "completion")]
    assert "byte order mark" in report.problems[0].message
    assert report.records == 2


def test_windows_line_endings_are_fine(tmp_path, count):
    path = tmp_path / "train.jsonl"
    path.write_bytes((json.dumps(GOOD) + "\r\n").encode() * 3)
    assert validate(path, count).ok


@pytest.mark.parametrize("content", [b"", b"\n\n"], ids=["empty", "only-blank-lines"])
def test_a_file_without_records(tmp_path, count, content):
    path = tmp_path / "train.jsonl"
    path.write_bytes(content)
    report = validate(path, count)
    assert report.records == 0
    assert report.problems[-1] == Problem(None, None, "no records: the training file is empty; it needs one JSON record per line")
    assert report.problem_count == 1 + content.count(b"\n")


def test_too_long_record_is_reported_by_how_many_tokens(tmp_path, count):
    short = {"prompt": "a b c", "completion": "d"}  # 3 + 1 + EOS = 5
    long = {"prompt": "one two three four five six", "completion": "seven eight nine ten eleven"}  # 6 + 5 + 1 = 12
    report = validate(write_lines(tmp_path / "train.jsonl", [short, long, short]), count, max_sequence_length=10)
    assert report.problem_count == 1
    problem = report.problems[0]
    assert (problem.line, problem.field) == (2, None)
    assert "too long by 2 tokens" in problem.message and "prompt + completion + EOS = 12 tokens" in problem.message
    assert report.max_record_tokens == 12
    # exactly at the limit is fine
    assert validate(tmp_path / "train.jsonl", count, max_sequence_length=12).ok


def test_saved_truncation_does_not_hide_long_records(count):
    assert count(["one two three four five six seven"]) == [7]  # the tokenizer.json truncates at 4


def test_stored_problems_are_capped_but_all_counted(tmp_path, count):
    lines = [GOOD if i % 3 == 0 else {"prompt": "a", "completion": i} for i in range(600)]
    report = validate(write_lines(tmp_path / "train.jsonl", lines), count)
    assert report.problem_count == 400
    assert len(report.problems) == 100
    assert [p.line for p in report.problems] == [i + 1 for i in range(600) if i % 3][:100]  # in line order
    assert report.records == 600


def test_problems_stay_in_line_order_across_length_checks(tmp_path, count):
    long = {"prompt": "a b c d e f g h", "completion": "i"}
    report = validate(write_lines(tmp_path / "train.jsonl", [long, "oops", long]), count, max_sequence_length=5)
    assert [p.line for p in report.problems] == [1, 2, 3]


def test_failure_message(tmp_path, count):
    lines = [GOOD, GOOD, {"prompt": "a", "completion": 1}] + [""] * 36
    path = write_lines(tmp_path / "train.jsonl", lines)
    report = validate(str(path), count)
    assert report.failure_message(limit=2) == (
        f"{path}: 37 problems. line 3 [completion]: must be a string, got number; "
        "line 4: blank line: every line must be one JSON record; remove empty lines; ... and 35 more. "
        "Fix the file and create the job again."
    )
    one = validate(write_lines(tmp_path / "one.jsonl", [{"prompt": "a", "completion": "b", "x": 1}]), count)
    assert one.failure_message().startswith(f"{tmp_path / 'one.jsonl'}: 1 problem. line 1 [x]: unknown key")
    assert "more" not in one.failure_message()


def chat(*turns: tuple[str, str]) -> dict:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def test_valid_chat_file(tmp_path, count):
    records = [
        chat(("system", "be brief"), ("user", "what is the capital of france"), ("assistant", "paris")),
        chat(("user", "hi"), ("assistant", "hello"), ("user", "capital of france"), ("assistant", "paris")),
    ]
    report = validate(write_lines(tmp_path / "chat.jsonl", records), count)
    assert report.ok, report.failure_message()
    assert report.chat_form is True
    per_chat = lambda words, messages: words + CHAT_TOKENS_PER_MESSAGE * messages + 1  # noqa: E731
    assert report.tokens == per_chat(2 + 6 + 1, 3) + per_chat(1 + 1 + 3 + 1, 4)
    assert list(read_records(tmp_path / "chat.jsonl", FT)) == records


@pytest.mark.parametrize(
    ("record", "field", "words"),
    [
        (chat(("user", "hi"), ("robot", "beep")), "messages[1].role", "must be one of system, user, assistant, got 'robot'"),
        (chat(("user", "hi"), ("assistant", "hello"), ("user", "bye")), "messages", "must end with an assistant turn"),
        (chat(("system", "s")), "messages", "ends with system"),
        (chat(("assistant", "hello"), ("user", "hi"), ("assistant", "a")), "messages[0].role", "expected user after the first message"),
        (chat(("user", "a"), ("user", "b"), ("assistant", "c")), "messages[1].role", "expected assistant after a user turn"),
        (chat(("user", "a"), ("system", "b"), ("assistant", "c")), "messages[1].role", "expected assistant"),
        (chat(("system", "a"), ("assistant", "c")), "messages[1].role", "expected user after the system message"),
        (chat(("user", "a"), ("assistant", "")), "messages[1].content", "must not be empty"),
        (chat(("user", "a"), ("assistant", ["c"])), "messages[1].content", "must be a string, got array"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "c"}]}, "messages[0].content", "missing"),
        ({"messages": [{"role": "user", "content": "a", "name": "x"}, {"role": "assistant", "content": "c"}]},
         "messages[0].name", "unknown key"),
        ({"messages": ["hi", {"role": "assistant", "content": "c"}]}, "messages[0]", "must be an object"),
        ({"messages": []}, "messages", "got an empty array"),
        ({"messages": "hi"}, "messages", "got string"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "c"}], "id": 1}, "id", "unknown key"),
    ],
    ids=["bad-role", "ends-with-user", "only-system", "starts-with-assistant", "two-users", "system-in-middle",
         "no-user", "empty-content", "content-array", "no-content", "extra-message-key", "message-string",
         "empty-list", "messages-string", "extra-key"],
)
def test_invalid_chat_records(tmp_path, count, record, field, words):
    good = chat(("user", "hi"), ("assistant", "hello"))
    report = validate(write_lines(tmp_path / "chat.jsonl", [good, record]), count)
    assert [(p.line, p.field) for p in report.problems] == [(2, field)]
    assert words in report.problems[0].message


def test_mixing_forms_reports_the_first_line_that_switches(tmp_path, count):
    lines = [GOOD, GOOD, chat(("user", "hi"), ("assistant", "hello")), chat(("user", "a"), ("assistant", "b")), GOOD]
    report = validate(write_lines(tmp_path / "mixed.jsonl", lines), count)
    assert report.problem_count == 1
    problem = report.problems[0]
    assert (problem.line, problem.field) == (3, None)
    assert "uses the chat (messages) form but line 1 uses the prompt/completion form" in problem.message
    assert report.chat_form is False
    with pytest.raises(InvalidInput, match="line 3"):
        list(read_records(tmp_path / "mixed.jsonl", FT))


def test_continued_pre_training_file(tmp_path, count):
    path = write_lines(tmp_path / "cpt.jsonl", [{"input": "the hotel guest pays"}, {"input": "paris"}])
    report = validate(path, count, kind=CPT)
    assert report.ok and report.tokens == (4 + 1) + (1 + 1) and report.chat_form is None
    assert list(read_records(path, CPT)) == [{"input": "the hotel guest pays"}, {"input": "paris"}]
    bad = validate(write_lines(tmp_path / "bad.jsonl", [GOOD, {"input": 1}]), count, kind=CPT)
    assert [(p.line, p.field) for p in bad.problems] == [(1, "input"), (1, "prompt"), (1, "completion"), (2, "input")]


def test_too_many_records(tmp_path, count):
    path = write_lines(tmp_path / "train.jsonl", [GOOD] * 4)
    report = validate(path, count, limits=DataLimits(max_records_fine_tuning=3))
    assert [(p.line, p.field) for p in report.problems] == [(None, None)]
    assert "4 records, more than the 3 allowed for FINE_TUNING" in report.problems[0].message
    cpt = validate(path, count, kind=CPT, limits=DataLimits(max_records_fine_tuning=3))
    assert all(p.line is not None for p in cpt.problems)  # its own limit (100,000) holds; only the keys are wrong


def test_file_too_big_is_rejected_from_its_size_without_reading_it(tmp_path, count):
    path = write_lines(tmp_path / "train.jsonl", [GOOD, "not json"] * 10)
    size = path.stat().st_size
    report = validate(path, count, limits=DataLimits(max_training_bytes_fine_tuning=size - 1))
    assert report.problem_count == 1 and report.records == 0 and report.bytes == size
    assert f"({size:,} bytes), more than the" in report.problems[0].message
    # the validation file has its own (smaller) limit
    assert validate(path, count, role="validation", limits=DataLimits(max_validation_bytes=100)).problems[0].line is None
    assert validate(path, count, role="validation").problem_count == 10  # within 100 MB: the 10 bad lines


def test_an_over_long_line_is_skipped_not_held(tmp_path, count):
    path = write_lines(tmp_path / "train.jsonl", [GOOD, {"prompt": "x " * 500, "completion": "y"}, GOOD, {"prompt": "a"}])
    report = validate(path, count, limits=DataLimits(max_line_bytes=200))
    assert [(p.line, p.field) for p in report.problems] == [(2, None), (4, "completion")]
    assert "longer than the 200 allowed" in report.problems[0].message
    assert report.records == 4 and report.bytes == path.stat().st_size


def test_combined_record_count_of_training_and_validation(tmp_path, count):
    train = validate(write_lines(tmp_path / "train.jsonl", [GOOD] * 3), count)
    val = validate(write_lines(tmp_path / "val.jsonl", [GOOD] * 2), count, role="validation")
    [problem] = check_combined([train, val], DataLimits(max_records_fine_tuning=4))
    assert "3 (training) + 2 (validation) = 5 records, more than the 4 allowed" in problem.message
    assert check_combined([train, val], DataLimits(max_records_fine_tuning=5)) == []
    assert check_combined([train], DataLimits(max_records_fine_tuning=1)) == []  # validate_dataset reports that one


def test_summary(tmp_path, count):
    report = validate(write_lines(tmp_path / "train.jsonl", [GOOD] * 5), count)
    assert report.summary(batch_size=2, epochs=3) == {
        "records": 5, "tokens": 40, "max_record_tokens": 8, "steps": 9, "estimated_seconds": None,
        "rows": 5, "split_records": 0, "split_windows": 0,
    }
    assert report.summary(batch_size=8, epochs=2, tokens_per_second=20.0)["estimated_seconds"] == 4.0
    with pytest.raises(InvalidInput) as err:
        report.summary(batch_size=0, epochs=1)
    assert err.value.field == "batch_size"


def test_progress_reports_bytes_read(tmp_path, count):
    path = write_lines(tmp_path / "train.jsonl", [GOOD] * 1000)
    seen: list[int] = []
    validate(path, count, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == path.stat().st_size and len(seen) >= 4


def test_read_records_refuses_an_invalid_file(tmp_path):
    path = write_lines(tmp_path / "train.jsonl", [GOOD, {"prompt": "a", "completion": 1}])
    records = read_records(path, FT)
    assert next(records) == GOOD
    with pytest.raises(InvalidInput, match=r"line 2 \[completion\]: must be a string") as err:
        next(records)
    assert err.value.field == "completion"


def test_missing_file_and_bad_arguments_raise(tmp_path, count):
    with pytest.raises(NotFound):
        validate(tmp_path / "nope.jsonl", count)
    with pytest.raises(InvalidInput) as err:
        validate(tmp_path / "nope.jsonl", count, max_sequence_length=0)
    assert err.value.field == "max_sequence_length"
    with pytest.raises(InvalidInput) as err:
        DataLimits(max_validation_bytes=0)
    assert err.value.field == "max_validation_bytes"


def test_validates_from_s3(s3_env, count):
    uri = f"{s3_env}/data/train.jsonl"
    storage.write_bytes(uri, b"".join(json.dumps(r).encode() + b"\n" for r in [GOOD, {"prompt": "a", "completion": 2}, GOOD]))
    storage.write_bytes(f"{uri}.bak", b"x" * 10_000)  # a longer key with the same prefix: not our size
    report = validate(uri, count)
    assert [(p.line, p.field) for p in report.problems] == [(2, "completion")]
    assert report.records == 3 and report.tokens == 16
    assert report.failure_message().startswith(f"{uri}: 1 problem. line 2 [completion]")
    too_big = validate(uri, count, limits=DataLimits(max_training_bytes_fine_tuning=50))
    assert too_big.records == 0 and too_big.bytes == report.bytes  # rejected from the listed size
    storage.write_bytes(uri, json.dumps(GOOD).encode() + b"\n")
    assert list(read_records(uri, FT)) == [GOOD]


@pytest.mark.slow  # 50,000 lines, memory traced
def test_large_file_streams_in_batches(tmp_path, count):
    """50,000 lines are read a batch at a time, never held whole. Its speed: bench/validate_throughput.py."""
    lines = 50_000
    record = json.dumps({"prompt": "summarize the conversation: " + "the hotel guest pays " * 8, "completion": "the guest pays"})
    one = validate(write_lines(tmp_path / "one.jsonl", [json.loads(record)]), count, max_sequence_length=128)
    path = tmp_path / "big.jsonl"
    path.write_bytes((record + "\n").encode() * lines)
    seen: list[int] = []
    tracemalloc.start()
    try:
        report = validate(path, count, max_sequence_length=128, limits=DataLimits(max_records_fine_tuning=lines),
                          progress=seen.append)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.ok and report.records == lines and report.tokens == lines * one.tokens
    assert len(seen) == lines // BATCH_LINES + 1 and seen == sorted(seen) and seen[-1] == path.stat().st_size
    assert peak < path.stat().st_size / 10, peak  # the file is 12 MB; measured peak 0.4 MB (a batch is 60 KB)


# ---- lengths: what a record is checked against (tuneforge.training.lengths) -------------------------------------------
def test_continued_pre_training_splits_long_records_instead_of_refusing_them(tmp_path, count):
    # 12, 3 and 25 tokens with EOS; rows of 10: the first is split into 2 windows, the last into 3
    lines = [{"input": " ".join(["w"] * 11)}, {"input": "a b"}, {"input": " ".join(["w"] * 24)}]
    report = validate(write_lines(tmp_path / "book.jsonl", lines), count, kind=CPT, max_sequence_length=10)
    assert report.ok, report.problems
    assert (report.split_records, report.split_windows, report.tokens) == (2, 5, 40)
    summary = report.summary(batch_size=2, epochs=1)
    assert summary["rows"] == 4 and summary["steps"] == 2  # 40 tokens packed into rows of 10, not 3 records


def test_fine_tuning_record_over_the_context_names_it_and_the_fix(tmp_path, count):
    long = {"prompt": "one two three four five six", "completion": "seven eight nine ten eleven"}  # 12 tokens
    limit = record_limit(FT, context=10, max_sequence_length=None, base_model_id="tiny", batch_size=8)
    report = validate(write_lines(tmp_path / "train.jsonl", [long]), count, max_sequence_length=None, limit=limit)
    [problem] = report.problems
    assert problem.line == 1
    assert "too long by 2 tokens: prompt + completion + EOS = 12 tokens, more than the model's context of 10" in problem.message
    assert "maxSequenceLength" in problem.message and "longer context" in problem.message
    # within the context it trains: no limit of 1,024 applies by default
    limit = record_limit(FT, context=8192, max_sequence_length=None, base_model_id="tiny", batch_size=8)
    assert limit.tokens == 8192


def test_bedrock_limits_apply_to_its_own_model_ids_where_stricter(tmp_path, count):
    titan = record_limit(CPT, context=8192, max_sequence_length=None, base_model_id="amazon.titan-text-express-v1:0:8k",
                         batch_size=1)
    assert titan.tokens == 4096 and "Amazon Bedrock's limit for amazon.titan-text-express-v1:0:8k at batchSize 1" in titan.source
    at_two = record_limit(CPT, context=8192, max_sequence_length=None, base_model_id="amazon.titan-text-express-v1",
                          batch_size=2)
    assert at_two.tokens == 2048 and "batchSize 1 for up to 4,096" in at_two.fix
    lite = record_limit(FT, context=8192, max_sequence_length=None, base_model_id="amazon.titan-text-lite-v1", batch_size=2)
    assert lite.tokens == 4096
    llama = record_limit(FT, context=8192, max_sequence_length=None, base_model_id="meta.llama2-13b-v1:0:4k", batch_size=1)
    assert llama.tokens == 4096
    assert record_limit(CPT, context=8192, max_sequence_length=None, base_model_id="huggingfacetb.smollm2-135m-instruct-v1",
                        batch_size=8) is None
    # the model's own context wins where it is the stricter one
    assert record_limit(FT, context=256, max_sequence_length=None, base_model_id="meta.llama2-13b-v1", batch_size=1).tokens == 256
    tiny = titan.__class__(12, titan.source, titan.fix)
    report = validate(write_lines(tmp_path / "book.jsonl", [{"input": " ".join(["w"] * 12)}]), count, kind=CPT,
                      max_sequence_length=None, limit=tiny, window=8)
    [problem] = report.problems
    assert "input + EOS = 13 tokens, more than Amazon Bedrock's limit" in problem.message and "user guide" in problem.message


def test_training_length_rule():
    assert training_length(FT, context=8192, max_sequence_length=None, longest=1087) == 1087  # grows to the record
    assert training_length(FT, context=8192, max_sequence_length=None, longest=300) == 1024  # never below the default
    assert training_length(FT, context=512, max_sequence_length=None, longest=300) == 512  # nor above the context
    assert training_length(CPT, context=8192, max_sequence_length=None, longest=5000) == 1024  # rows; longer is split
    assert training_length(CPT, context=8192, max_sequence_length=2048) == 2048
    with pytest.raises(InvalidInput) as err:
        training_length(FT, context=256, max_sequence_length=512)
    assert "longer than the model's context of 256" in err.value.message and err.value.field == "hyperParameters"
