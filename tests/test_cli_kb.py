"""`tuneforge kb ...` as a user runs it: the real command in subprocesses, tiny random models."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import run


@pytest.mark.slow  # CLI processes, an ingestion process and model workers
def test_kb_commands_end_to_end(home, tmp_path, tiny_model_dir, tiny_embedder_dir, tiny_reranker_dir):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "brokers.md").write_text("# Brokers\n\nEvery broker or dealer must register with the Commission before trading.")
    (docs / "hotel.txt").write_text("The guest checks in at the hotel and pays with a credit card.")
    run("models", "add", "tiny", str(tiny_model_dir))
    run("models", "add", "tiny.embedder", str(tiny_embedder_dir), "--embedding")

    assert "128 tokens per chunk at most" in run("kb", "create", "laws", "--embedding-model", "tiny.embedder").stdout
    bad = run("kb", "add-source", "laws", str(docs), "--max-tokens", "500", check=False)
    assert bad.returncode == 2 and "maxTokens" in bad.stderr and "126" in bad.stderr
    assert "reading file://" in run("kb", "add-source", "laws", str(docs), "--max-tokens", "60").stdout
    synced = run("kb", "sync", "laws")
    assert "COMPLETE" in synced.stdout and "NewDocumentsIndexed" in synced.stdout
    again = json.loads(run("kb", "sync", "laws", "--json").stdout)["ingestionJob"]
    assert again["status"] == "COMPLETE" and again["statistics"]["numberOfNewDocumentsIndexed"] == 0
    listed = run("kb", "list", "--wide").stdout
    assert "laws" in listed and "tiny.embedder" in listed
    assert "COMPLETE" in run("kb", "get", "laws").stdout

    found = json.loads(run("kb", "retrieve", "laws", "broker register", "--hybrid", "-k", "1", "--json").stdout)["retrievalResults"]
    assert found[0]["metadata"]["x-amz-bedrock-kb-source-uri"].endswith("brokers.md")
    assert "brokers.md" in run("kb", "retrieve", "laws", "broker register", "--hybrid", "-k", "1").stdout
    run("models", "add", "tiny.reranker", str(tiny_reranker_dir), "--reranker")
    reranked = json.loads(run("kb", "retrieve", "laws", "broker register", "-k", "2", "--reranker", "tiny.reranker", "--json").stdout)
    assert len(reranked["retrievalResults"]) == 2 and reranked["retrievalResults"][0]["score"] >= reranked["retrievalResults"][1]["score"]
    not_one = run("kb", "retrieve", "laws", "broker", "--reranker", "tiny.embedder", check=False)
    assert not_one.returncode == 2 and "--reranker" in not_one.stderr and "not a reranker" in not_one.stderr

    # a conversation: two questions on stdin share one session; the follow-up is rewritten before searching
    answers = run("kb", "ask", "laws", "--model", "tiny", "-k", "1", "--max-tokens", "8", "--json",
                  "--template", "$search_results$ Q: $query$", input="Who must register?\nAnd when?\n").stdout
    first, second = [json.loads(doc) for doc in answers.replace("}\n{", "}\n\x00{").split("\x00")]
    assert first["sessionId"] == second["sessionId"] and first["query"] == "Who must register?"
    for answer in (first, second):
        for c in answer["citations"]:
            span = c["generatedResponsePart"]["textResponsePart"]["span"]
            assert answer["output"]["text"][span["start"]:span["end"]] == c["generatedResponsePart"]["textResponsePart"]["text"]
    follow = json.loads(run("kb", "ask", "laws", "And where?", "--model", "tiny", "-k", "1", "--max-tokens", "8",
                            "--session", first["sessionId"], "--json", "--template", "$search_results$ Q: $query$").stdout)
    assert follow["sessionId"] == first["sessionId"]

    assert run("kb", "get", "nope", check=False).returncode == 3
    run("kb", "delete", "laws")
    assert "laws" not in run("kb", "list").stdout
