"""`bedrock-runtime` through real boto3 clients against a real `tuneforge serve` and real model workers."""

from __future__ import annotations

import json
import time

import psutil
import pytest
from botocore.exceptions import ClientError

from tests.api_server import ShapeChecker

LLAMA = "meta.llama2-13b-chat-v1"
TITAN = "amazon.titan-text-express-v1"


pytestmark = pytest.mark.server(aliases={LLAMA: "tiny", TITAN: "tiny"})


@pytest.fixture(scope="module")
def runtime(server):
    c = server.client("bedrock-runtime")
    c.shapes = ShapeChecker(c)
    yield c
    assert c.shapes.problems == [], c.shapes.problems


def llama_body(prompt="<s>[INST] Describe the hotel check-in. [/INST]", **extra):
    return json.dumps({"prompt": prompt, "max_gen_len": 12, "temperature": 0, **extra})


def test_invoke_llama2_body(runtime):
    reply = runtime.invoke_model(modelId=LLAMA, body=llama_body(), contentType="application/json", accept="application/json")
    assert reply["contentType"] == "application/json"
    body = json.loads(reply["body"].read())
    assert set(body) == {"generation", "prompt_token_count", "generation_token_count", "stop_reason"}
    assert body["generation_token_count"] <= 12 and body["prompt_token_count"] > 5 and body["stop_reason"] in ("stop", "length")


def test_invoke_titan_body_by_arn(runtime):
    arn = f"arn:aws:bedrock:us-east-1::foundation-model/{TITAN}"
    body = json.loads(runtime.invoke_model(modelId=arn, body=json.dumps(
        {"inputText": "User: hello\nBot:", "textGenerationConfig": {"maxTokenCount": 8, "temperature": 0}})
    )["body"].read())
    assert set(body) == {"inputTextTokenCount", "results"}
    assert body["results"][0]["tokenCount"] <= 8 and body["results"][0]["completionReason"] in ("FINISH", "LENGTH", "STOP_CRITERIA_MET")


def test_stream_matches_the_plain_reply(runtime):
    plain = json.loads(runtime.invoke_model(modelId=LLAMA, body=llama_body())["body"].read())
    reply = runtime.invoke_model_with_response_stream(modelId=LLAMA, body=llama_body())
    chunks = [json.loads(event["chunk"]["bytes"]) for event in reply["body"]]
    assert "".join(c["generation"] for c in chunks) == plain["generation"]
    assert all(c["stop_reason"] is None for c in chunks[:-1]) and chunks[-1]["stop_reason"] == plain["stop_reason"]
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == plain["generation_token_count"] and metrics["inputTokenCount"] == plain["prompt_token_count"]


def test_converse_and_converse_stream(runtime):
    args = dict(modelId=LLAMA, system=[{"text": "Answer briefly."}],
                messages=[{"role": "user", "content": [{"text": "Where is room 507?"}]}],
                inferenceConfig={"maxTokens": 10, "temperature": 0})
    reply = runtime.converse(**args)
    text = reply["output"]["message"]["content"][0]["text"]
    assert reply["stopReason"] in ("end_turn", "max_tokens") and reply["usage"]["outputTokens"] <= 10
    assert reply["usage"]["totalTokens"] == reply["usage"]["inputTokens"] + reply["usage"]["outputTokens"]
    events = list(runtime.converse_stream(**args)["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    streamed = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert streamed == text and events[-1]["metadata"]["usage"] == reply["usage"]


@pytest.mark.parametrize(
    ("model", "body", "code", "status"),
    [
        (LLAMA, "{not json", "ValidationException", 400),
        (LLAMA, json.dumps({"prompt": "x", "max_gen_len": 5000}), "ValidationException", 400),
        (TITAN, json.dumps({"prompt": "a Llama body to a Titan model"}), "ValidationException", 400),
        ("meta.llama3-70b-instruct-v1:0", llama_body(), "ResourceNotFoundException", 404),
        ("arn:aws:bedrock:us-east-1:000000000000:custom-model/tiny/abcdefghijkl", llama_body(), "ValidationException", 400),
        (LLAMA, json.dumps({"prompt": "rules " * 400, "max_gen_len": 5}), "ValidationException", 400),
    ],
)
def test_bad_invocations(runtime, model, body, code, status):
    with pytest.raises(ClientError) as err:
        runtime.invoke_model(modelId=model, body=body)
    assert (err.value.response["Error"]["Code"], err.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)


def test_a_killed_worker_is_replaced(runtime, server):
    runtime.invoke_model(modelId=LLAMA, body=llama_body())
    workers = [p for p in psutil.Process(server.proc.pid).children(recursive=True) if "tuneforge.inference.worker" in " ".join(p.cmdline())]
    assert len(workers) == 1
    workers[0].kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # dead once it is a zombie (the server reaps it later) or gone
        try:
            if workers[0].status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    time.sleep(0.5)  # let the server's reader thread see the worker's end
    body = json.loads(runtime.invoke_model(modelId=LLAMA, body=llama_body())["body"].read())
    assert body["generation_token_count"] > 0


def test_our_own_model_ids_take_either_body_family(runtime):
    """"tiny" is no Bedrock id, so a Titan body gets a Titan reply and a Llama 2 body a Llama 2 reply; a Bedrock
    Llama id still refuses a Titan body, as Bedrock does."""
    titan = json.loads(runtime.invoke_model(modelId="tiny", body=json.dumps(
        {"inputText": "Hello", "textGenerationConfig": {"maxTokenCount": 4, "temperature": 0}}))["body"].read())
    assert set(titan) == {"inputTextTokenCount", "results"}
    llama = json.loads(runtime.invoke_model(modelId="tiny", body=llama_body())["body"].read())
    assert "generation" in llama
    with pytest.raises(ClientError) as err:
        runtime.invoke_model(modelId=LLAMA, body=json.dumps({"inputText": "Hello"}))
    assert err.value.response["Error"]["Code"] == "ValidationException"
