"""Schemathesis fuzzes the non-AWS routes from the server's own OpenAPI document (GET /openapi.json) against a real
`tuneforge serve` with the tiny model: no 5xx, every reply conforms to the document, every error is OpenAI's JSON."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance
from hypothesis import HealthCheck, settings

import tuneforge.api.app


# the very file the server serves (test_openapi_is_served_and_open checks they agree); loaded at import so the
# cases are known at collection (schemathesis.pytest.from_fixture breaks on pytest 9's nodes)
OPENAPI = Path(tuneforge.api.app.__file__).parent / "openai" / "openapi.json"
schema = schemathesis.openapi.from_path(OPENAPI)


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_routes_conform(case, server):
    if case.body is not None and isinstance(case.body, dict) and "max_tokens" in case.body:
        case.body["max_tokens"] = min(case.body["max_tokens"], 4) if isinstance(case.body["max_tokens"], int) else case.body["max_tokens"]
    response = case.call_and_validate(base_url=server.url, headers={"Authorization": f"Bearer {server.key[1]}"}, timeout=60,
                                        # a schema-valid model id may still be malformed for the catalog (400) or unknown (404)
                                        excluded_checks=[positive_data_acceptance])
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and case.path.startswith("/v1"):
        assert response.headers["content-type"] == ["application/json"], (case.method, case.path, response.status_code, response.text)
        error = json.loads(response.text)["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]


def test_openapi_is_served_and_open(server):
    reply = httpx.get(f"{server.url}/openapi.json")
    doc = reply.json()
    assert reply.status_code == 200 and doc["openapi"].startswith("3.1")
    assert doc == json.loads(OPENAPI.read_text())
    assert {"/health", "/metrics", "/v1/models", "/v1/models/{model}", "/v1/chat/completions", "/v1/completions", "/v1/embeddings"} <= set(doc["paths"])


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b"[]", b"null", json.dumps({"model": "tiny", "messages": "hi"}).encode(),
                                  json.dumps({"model": "no.such-model", "messages": [{"role": "user", "content": "x"}]}).encode()])
def test_bad_chat_bodies_get_openai_errors(server, body):
    reply = httpx.post(f"{server.url}/v1/chat/completions", content=body, timeout=60,
                       headers={"Authorization": f"Bearer {server.key[1]}", "Content-Type": "application/json"})
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.json()["error"]["message"]


@pytest.mark.parametrize(("method", "path"), [("PUT", "/health"), ("POST", "/metrics"), ("PUT", "/v1/models"),
                                              ("PUT", "/v1/chat/completions"), ("DELETE", "/v1/models/tiny"),
                                              ("TRACE", "/v1/completions"), ("OPTIONS", "/v1/models")])
def test_other_methods_on_known_paths_get_405(server, method, path):
    # regression (schemathesis ST204): /health and /metrics answered 501 (AWS catch-all), /v1 paths 404
    reply = httpx.request(method, f"{server.url}{path}", headers={"Authorization": f"Bearer {server.key[1]}"})
    assert reply.status_code == 405, reply.text
    if path.startswith("/v1"):
        assert reply.json()["error"]["code"] == "method_not_allowed"


def test_unroutable_model_path_gets_openai_json(server):
    # regression (schemathesis ST105): a newline in the model id matched no route and got Starlette's text/plain 404
    reply = httpx.get(f"{server.url}/v1/models/a%0Ab", headers={"Authorization": f"Bearer {server.key[1]}"})
    assert reply.status_code == 404 and reply.json()["error"]["message"]
