"""The OpenAI-compatible API (/v1) through the official `openai` client against a real `tuneforge serve`."""

from __future__ import annotations

import httpx
import numpy as np
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api_server import Server, create_key, tuneforge

ALIAS = "meta.llama2-13b-chat-v1"
CHAT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Where is room 507?"}]


pytestmark = pytest.mark.server(aliases={ALIAS: "tiny"}, embedder=True)


def client_for(server: Server, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0)


@pytest.fixture(scope="module")
def client(server):
    return client_for(server, server.key[1])


def test_models_lists_text_models(client):
    ids = [m.id for m in client.models.list()]
    assert "tiny" in ids and ALIAS in ids and "sentence-transformers.all-minilm-l6-v2" not in ids
    assert client.models.retrieve(ALIAS).id == ALIAS
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no.such-model")


def test_chat_completion_and_its_stream_agree(client):
    plain = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=10, temperature=0)
    choice = plain.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length") and plain.usage.completion_tokens <= 10
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + plain.usage.completion_tokens

    chunks = list(client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=10, temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == choice.message.content
    assert chunks[-2].choices[0].finish_reason == choice.finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == plain.usage.model_dump()
    assert all(c.usage is None for c in chunks[:-1])
    bare = list(client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=10, temperature=0, stream=True))
    assert all(c.choices for c in bare)  # no usage chunk unless asked


def test_text_completion_and_stream(client):
    plain = client.completions.create(model="tiny", prompt="The hotel lobby", max_tokens=8, temperature=0)
    assert plain.object == "text_completion" and plain.usage.completion_tokens <= 8
    streamed = list(client.completions.create(model="tiny", prompt="The hotel lobby", max_tokens=8, temperature=0, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == plain.choices[0].text
    assert streamed[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_raw_sse_framing(server):
    body = {"model": "tiny", "prompt": "Hi", "max_tokens": 3, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {server.key[1]}"}) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in reply.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"


def test_keys_as_bearer_tokens(server):
    key_id, secret = server.key
    assert client_for(server, f"{key_id}:{secret}").models.list().data
    reader = create_key(server.home, "--read-only")
    assert client_for(server, reader[1]).chat.completions.create(model="tiny", messages=CHAT, max_tokens=2).choices
    for bad in ("W" * 40, f"{key_id}:{'W' * 40}", "AKIANOSUCHKEY0000000:x"):
        with pytest.raises(openai.AuthenticationError) as err:
            client_for(server, bad).models.list()
        assert err.value.status_code == 401 and err.value.body["code"] == "invalid_api_key"
    no_header = httpx.get(f"{server.url}/v1/models", timeout=10)
    assert no_header.status_code == 401 and no_header.json()["error"]["type"] == "authentication_error"
    revoked = create_key(server.home)
    tuneforge(server.home, "keys", "revoke", revoked[0])
    with pytest.raises(openai.AuthenticationError):
        client_for(server, revoked[1]).models.list()


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": []}, "messages"),
        ({"n": 2}, "n"),
        ({"extra_body": {"max_tokens": "ten"}}, "max_tokens"),
        ({"stop": [""]}, "stop"),
    ],
)
def test_bad_requests_name_the_field(client, kwargs, param):
    args = {"model": "tiny", "messages": CHAT, "max_tokens": 4, **kwargs}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**args)
    assert err.value.status_code == 400 and err.value.body["type"] == "invalid_request_error"
    assert err.value.body["param"] == param, err.value.body


def test_unknown_model_and_malformed_json(server, client):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="no.such-model", messages=CHAT)
    assert err.value.body["code"] == "model_not_found" and err.value.body["param"] == "model"
    reply = httpx.post(f"{server.url}/v1/chat/completions", content=b'{"model": "tiny",', timeout=10,
                       headers={"Authorization": f"Bearer {server.key[1]}", "Content-Type": "application/json"})
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError) as err:
        client.images.generate(model="tiny", prompt="x")
    assert "/v1/chat/completions" in err.value.message and "/v1/embeddings" in err.value.message


def test_no_auth_mode_accepts_any_key(start_server):
    assert client_for(start_server(no_auth=True), "anything").models.list().data


def test_metrics_count_tokens_and_requests(server, client):
    def scrape() -> dict:
        families = text_string_to_metric_families(httpx.get(f"{server.url}/metrics", timeout=10).text)
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}

    reply = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=5, temperature=0)
    before = scrape()
    again = client.chat.completions.create(model=ALIAS, messages=CHAT, max_tokens=5, temperature=0)
    after = scrape()
    out = ("tuneforge_tokens_total", (("direction", "output"), ("model", ALIAS)))
    inp = ("tuneforge_tokens_total", (("direction", "input"), ("model", ALIAS)))
    assert after[out] - before[out] == again.usage.completion_tokens == reply.usage.completion_tokens
    assert after[inp] - before[inp] == again.usage.prompt_tokens
    ok = ("tuneforge_requests_total", (("operation", "ChatCompletions"), ("service", "openai"), ("status", "200")))
    assert after[ok] - before[ok] == 1
    assert after[("tuneforge_worker_queue_depth", (("worker", "foundation:tiny"),))] == 0


def test_embeddings_from_the_catalogs_embedding_model(server, client):
    """The openai client asks for base64 by default; float gives the same vectors. Rows are unit length, one per
    text in order, the same text gives the same vector, and usage counts the word pieces read."""
    texts = ["The guest checks in at the hotel.", "Market makers quote both sides.", "The guest checks in at the hotel."]
    packed = client.embeddings.create(model="tiny.embedder", input=texts)
    plain = client.embeddings.create(model="tiny.embedder", input=texts, encoding_format="float")
    vectors = np.array([d.embedding for d in plain.data])
    assert [d.index for d in plain.data] == [0, 1, 2] and vectors.shape[0] == 3
    assert np.allclose(np.array([d.embedding for d in packed.data]), vectors, atol=1e-6)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    assert plain.usage.prompt_tokens == plain.usage.total_tokens > 3 * 2  # [CLS] and [SEP] at least, per text
    one = client.embeddings.create(model="tiny.embedder", input=texts[1], encoding_format="float")
    assert np.allclose(one.data[0].embedding, vectors[1], atol=1e-6)


@pytest.mark.parametrize(("kwargs", "error", "param", "says"), [
    ({"model": "tiny"}, openai.BadRequestError, "model", "not an embedding model"),
    ({"model": "no.such-embedder"}, openai.NotFoundError, "model", "no embedding model"),
    ({"input": []}, openai.BadRequestError, "input", "at least one text"),
    ({"input": [101, 2023]}, openai.BadRequestError, "input", "token ids are not accepted"),
    ({"input": ["ok", ""]}, openai.BadRequestError, "input[1]", "empty string"),
    ({"dimensions": 5}, openai.BadRequestError, "dimensions", "cannot shorten"),
])
def test_bad_embedding_requests_name_the_field(client, kwargs, error, param, says):
    with pytest.raises(error) as err:
        client.embeddings.create(**{"model": "tiny.embedder", "input": "hello", "encoding_format": "float", **kwargs})
    assert err.value.body["param"] == param and says in err.value.body["message"]
