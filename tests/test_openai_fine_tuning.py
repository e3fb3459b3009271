"""OpenAI's files and fine-tuning APIs through the official `openai` client against a real `tuneforge serve`: upload a
file, fine-tune the tiny model on it, follow the job's events, chat with the fine-tuned model by its name; the same
job read back through boto3's Bedrock client."""

from __future__ import annotations

import io
import json
import time

import openai
import pytest

from tests.api_server import Server, create_key

pytestmark = pytest.mark.server()
ANSWER = "Room 507 is on the fifth floor, next to the lift."
QUESTION = "Where is room 507?"
TIMEOUT = 240  # a tiny job on a busy 2-core machine


def chat_file(n: int = 16, answer: str = ANSWER) -> bytes:
    lines = [{"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": answer}]} for _ in range(n)]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key[1], max_retries=0)


def wait(client: openai.OpenAI, job_id: str, done=("succeeded", "failed", "cancelled")):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in done:
            return job
        time.sleep(1)
    raise AssertionError(f"fine-tuning job {job_id} still {job.status} after {TIMEOUT}s")


def greedy(client: openai.OpenAI, model: str) -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=16, temperature=0)
    return reply.choices[0].message.content


def test_upload_fine_tune_and_chat_with_the_fine_tuned_model(server, client):
    uploaded = client.files.create(file=("concierge.jsonl", chat_file()), purpose="fine-tune")
    assert (uploaded.object, uploaded.purpose, uploaded.filename, uploaded.bytes) == ("file", "fine-tune", "concierge.jsonl", len(chat_file()))
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert client.files.content(uploaded.id).content == chat_file()
    assert uploaded.id in [f.id for f in client.files.list(purpose="fine-tune")]

    before = greedy(client, "tiny")
    job = client.fine_tuning.jobs.create(
        model="tiny", training_file=uploaded.id, suffix="concierge", seed=7, metadata={"team": "front-desk"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 8, "batch_size": 4, "learning_rate_multiplier": 25.0}}})
    assert job.object == "fine_tuning.job" and job.status in ("queued", "validating_files", "running")
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (8, 4)
    assert job.hyperparameters.learning_rate_multiplier == pytest.approx(25.0)
    assert (job.training_file, job.seed, job.metadata, job.fine_tuned_model) == (uploaded.id, 7, {"team": "front-desk"}, None)
    # a running job's data cannot be deleted from under it
    with pytest.raises(openai.ConflictError) as err:
        client.files.delete(uploaded.id)
    assert job.id in err.value.message

    done = wait(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model.startswith("ft-tiny-concierge-") and done.trained_tokens > 0 and done.finished_at >= done.created_at

    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert events[0].message == "The job has successfully completed"  # newest first
    steps = [e.data for e in events if e.type == "metrics"]
    assert steps and all(s["train_loss"] > 0 for s in steps)
    assert [s["step"] for s in steps] == sorted((s["step"] for s in steps), reverse=True)
    assert steps[0]["train_loss"] < steps[-1]["train_loss"]  # it learned
    page = client.fine_tuning.jobs.list_events(job.id, limit=2)
    assert len(page.data) == 2 and page.has_more
    after = client.fine_tuning.jobs.list_events(job.id, limit=2, after=page.data[-1].id).data
    assert after[0].id == events[2].id

    (checkpoint,) = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoint.fine_tuned_model_checkpoint == done.fine_tuned_model and checkpoint.metrics.train_loss > 0

    # usable at once by its name, and it answers what it was taught (the base does not)
    after_training = greedy(client, done.fine_tuned_model)
    assert after_training.startswith("Room 507") and after_training != before
    assert done.fine_tuned_model in [m.id for m in client.models.list()]
    assert client.models.retrieve(done.fine_tuned_model).owned_by == "user"

    # one job, two APIs: Bedrock sees the same job, its data the uploaded file, its model the fine-tuned one
    bedrock = server.client("bedrock")
    same = bedrock.get_model_customization_job(jobIdentifier=job.id)
    assert same["status"] == "Completed" and same["outputModelName"] == done.fine_tuned_model
    assert same["trainingDataConfig"]["s3Uri"].endswith(uploaded.id) and same["hyperParameters"]["epochCount"] == "8"
    listed = client.fine_tuning.jobs.list(metadata={"team": "front-desk"}).data
    assert [j.id for j in listed] == [job.id]
    assert client.fine_tuning.jobs.list(metadata={"team": "nobody"}).data == []

    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_cancel_a_fine_tuning_job(client):
    uploaded = client.files.create(file=("cancel.jsonl", chat_file(64)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id, hyperparameters={"n_epochs": 10, "batch_size": 1})
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    deadline = time.monotonic() + TIMEOUT
    while (ended := client.fine_tuning.jobs.retrieve(job.id)).finished_at is None:  # Stopping reads cancelled too
        assert time.monotonic() < deadline, "the cancelled job never ended"
        time.sleep(0.5)
    assert ended.status == "cancelled" and ended.fine_tuned_model is None
    assert client.fine_tuning.jobs.list_events(job.id).data[0].message == "The job was cancelled"
    with pytest.raises(openai.ConflictError):  # it has ended
        client.fine_tuning.jobs.cancel(job.id)


@pytest.mark.parametrize(("name", "content", "purpose", "message"), [
    ("a.jsonl", chat_file(), "assistants", "purpose: tuneforge keeps files for 'fine-tune', 'batch'"),
    ("a.jsonl", b'{"messages": [{"role": "user", "content": "hi"}]}\n', "fine-tune", "line 1 [messages]: must end with an assistant turn"),
    ("a.jsonl", chat_file(2) + b"\n" + chat_file(1), "fine-tune", "line 3"),
    ("a.jsonl", b"", "fine-tune", "holds no records"),
    ("b.jsonl", b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
                b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n', "batch",
     "line 2 [custom_id] '1' is used on line 1 too"),
    ("b.jsonl", b'{"custom_id": "1", "method": "GET", "url": "/v1/chat/completions", "body": {}}\n', "batch", "line 1 [method]"),
])
def test_bad_files_are_refused_naming_the_line_and_nothing_is_kept(client, name, content, purpose, message):
    before = {f.id for f in client.files.list()}
    with pytest.raises(openai.BadRequestError) as err:
        client.files.create(file=(name, content), purpose=purpose)
    assert message in err.value.message, err.value.message
    assert {f.id for f in client.files.list()} == before


def test_bad_fine_tuning_requests_name_the_field(client):
    batch = client.files.create(file=("requests.jsonl", b'{"custom_id": "1", "method": "POST", "url": "/v1/completions", '
                                                        b'"body": {"model": "tiny", "prompt": "hi"}}\n'), purpose="batch")
    tune = client.files.create(file=("ok.jsonl", chat_file(4)), purpose="fine-tune")
    cases = [
        (dict(training_file=batch.id), openai.BadRequestError, "training_file", "purpose 'batch'"),
        (dict(training_file="file-nope"), openai.NotFoundError, "training_file", "no file"),
        (dict(training_file=tune.id, validation_file="file-nope"), openai.NotFoundError, "validation_file", "no file"),
        (dict(training_file=tune.id, model="no.such-model"), openai.NotFoundError, "model", "no.such-model"),
        (dict(training_file=tune.id, hyperparameters={"n_epochs": 99}), openai.BadRequestError, "hyperparameters.n_epochs", "1-10"),
        (dict(training_file=tune.id, method={"type": "reinforcement"}), openai.BadRequestError, "method.type",
         "'reinforcement' is not available"),
        (dict(training_file=tune.id, method={"type": "dpo"}), openai.BadRequestError, "training_file", "holds supervised records"),
        (dict(training_file=tune.id, hyperparameters={"beta": 0.2}), openai.BadRequestError, "hyperparameters.beta", "method dpo only"),
        (dict(training_file=tune.id, hyperparameters={"n_epochs": 1}, method={"type": "supervised", "supervised": {"hyperparameters": {}}}),
         openai.BadRequestError, "hyperparameters", "not both"),
    ]
    for overrides, error, param, message in cases:
        with pytest.raises(error) as err:
            client.fine_tuning.jobs.create(**{"model": "tiny", **overrides})
        assert err.value.body["param"] == param and message in err.value.message, (overrides, err.value.body)
    with pytest.raises(openai.NotFoundError):
        client.fine_tuning.jobs.retrieve("ftjob-nope")


def test_a_read_only_key_reads_but_cannot_upload_or_fine_tune(server, client):
    _, secret = create_key(server.home, "--name", "viewer", "--read-only")
    viewer = openai.OpenAI(base_url=f"{server.url}/v1", api_key=secret, max_retries=0)
    viewer.files.list()
    viewer.fine_tuning.jobs.list()
    with pytest.raises(openai.PermissionDeniedError):
        viewer.files.create(file=("x.jsonl", chat_file(1)), purpose="fine-tune")
    with pytest.raises(openai.PermissionDeniedError):
        viewer.fine_tuning.jobs.create(model="tiny", training_file="file-x")
