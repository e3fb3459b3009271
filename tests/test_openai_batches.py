"""OpenAI's /v1/batches through the official `openai` client against a real `tuneforge serve`: a batch of chat requests
runs as one model invocation job (Bedrock's ListModelInvocationJobs shows it), its answers come back in an output file,
a bad request fails alone in the error file, and bad batches are refused naming the field."""

from __future__ import annotations

import json
import time

import openai
import pytest

from tests.api_server import Server

pytestmark = pytest.mark.server()
TIMEOUT = 240


def line(custom_id: str, body: dict, url: str = "/v1/chat/completions") -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def chat(content: str, **extra) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], "max_tokens": 6, "temperature": 0, **extra}


def upload(client: openai.OpenAI, lines: list[dict]):
    return client.files.create(file=("requests.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode()), purpose="batch")


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key[1], max_retries=0)


def wait(client: openai.OpenAI, batch_id: str):
    deadline = time.monotonic() + TIMEOUT
    while (batch := client.batches.retrieve(batch_id)).status not in ("completed", "failed", "cancelled", "expired"):
        assert time.monotonic() < deadline, batch
        time.sleep(1)
    return batch


def test_a_batch_answers_every_request_and_fails_bad_ones_alone(server, client):
    requests = [line(f"q{i}", chat(f"Where is room {500 + i}?")) for i in range(6)]
    requests.append(line("bad", {"model": "tiny", "messages": []}))  # no message: refused before the job starts
    requests.append(line("roles", {"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}))
    source = upload(client, requests)
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"purpose": "nightly"})
    assert batch.object == "batch" and batch.status in ("validating", "in_progress") and batch.metadata == {"purpose": "nightly"}

    done = wait(client, batch.id)
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (8, 6, 2)
    answers = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    assert sorted(a["custom_id"] for a in answers) == [f"q{i}" for i in range(6)]
    for answer in answers:
        completion = answer["response"]["body"]
        assert answer["response"]["status_code"] == 200 and answer["error"] is None
        assert completion["object"] == "chat.completion" and completion["usage"]["completion_tokens"] >= 1
        assert completion["choices"][0]["finish_reason"] in ("stop", "length")
    # the batch answers what the chat endpoint answers for the same greedy request
    one = client.chat.completions.create(**chat("Where is room 500?"))
    first = next(a for a in answers if a["custom_id"] == "q0")
    assert first["response"]["body"]["choices"][0]["message"]["content"] == one.choices[0].message.content
    errors = {json.loads(x)["custom_id"]: json.loads(x)["error"] for x in client.files.content(done.error_file_id).text.splitlines()}
    assert set(errors) == {"bad", "roles"} and "messages" in errors["bad"]["message"] and "role" in errors["roles"]["message"]
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"
    assert client.batches.retrieve(batch.id).output_file_id == done.output_file_id  # written once

    # one job, two APIs
    jobs = server.client("bedrock").list_model_invocation_jobs()["invocationJobSummaries"]
    (job,) = [j for j in jobs if j["jobName"] == batch.id.replace("_", "-")]
    assert job["status"] == "Completed" and job["modelId"] == "tiny"  # the refused two never reached it
    assert batch.id in [b.id for b in client.batches.list()]


def test_cancel_a_batch(client):
    source = upload(client, [line(f"c{i}", chat("Tell me a long story.", max_tokens=200)) for i in range(40)])
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert client.batches.cancel(batch.id).status in ("cancelling", "cancelled", "completed")
    ended = wait(client, batch.id)
    assert ended.status in ("cancelled", "completed")  # a very fast machine may finish first
    if ended.status == "cancelled":
        assert ended.request_counts.completed < 40 and ended.output_file_id  # what finished is kept


def test_bad_batches_are_refused_naming_the_field(client):
    tune = client.files.create(file=("t.jsonl", json.dumps({"prompt": "a", "completion": "b"}).encode() + b"\n"), purpose="fine-tune")
    mixed = upload(client, [line("a", chat("hi")), line("b", {**chat("hi"), "model": "other"})])
    completions = upload(client, [line("a", {"model": "tiny", "prompt": "hi"}, url="/v1/completions")])
    cases = [
        (dict(input_file_id=tune.id), "input_file_id", "purpose 'fine-tune'"),
        (dict(input_file_id=mixed.id), "input_file_id", "one model per batch"),
        (dict(input_file_id=completions.id), "input_file_id", "one endpoint per batch"),
        (dict(input_file_id=mixed.id, endpoint="/v1/embeddings"), "endpoint", "/v1/chat/completions"),
        (dict(input_file_id=mixed.id, completion_window="1h"), "completion_window", "24h"),
    ]
    for overrides, param, message in cases:
        with pytest.raises(openai.BadRequestError) as err:
            client.batches.create(**{"endpoint": "/v1/chat/completions", "completion_window": "24h", **overrides})
        assert err.value.body["param"] == param and message in err.value.message, (overrides, err.value.body)
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
