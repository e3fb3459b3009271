"""Knowledge-base ingestion, the document side: parse a file into clean text with page numbers, then split it
into chunks as Bedrock's chunkingConfiguration asks. See `parsing` and `chunking` for usage and limits.

    document = parse_document("act.pdf", data)                 # raises DocumentError: count it failed, go on
    chunks = chunker_from_config(chunking_configuration, tokenizer=tokenizer).chunk(document)
"""

from __future__ import annotations

from tuneforge.knowledge.chunking import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_OVERLAP_PERCENTAGE,
    Chunk,
    Chunker,
    Embedder,
    FixedSizeChunker,
    HierarchicalChunker,
    NoChunker,
    SemanticChunker,
    TokenCounter,
    chunker_from_config,
    default_token_counter,
    token_counter,
)
from tuneforge.knowledge.config import ChunkingSettings, ChunkingStrategy, validate_chunking_configuration
from tuneforge.knowledge.document import DocumentError, DocumentFormat, ParsedDocument, Section
from tuneforge.knowledge.parsing import (
    MAX_DOCUMENT_BYTES,
    MAX_SIDECAR_BYTES,
    SIDECAR_SUFFIX,
    MetadataValue,
    detect_format,
    load_sidecar,
    parse_document,
)
from tuneforge.knowledge.sentences import split_sentences

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_OVERLAP_PERCENTAGE",
    "MAX_DOCUMENT_BYTES",
    "MAX_SIDECAR_BYTES",
    "SIDECAR_SUFFIX",
    "Chunk",
    "Chunker",
    "ChunkingSettings",
    "ChunkingStrategy",
    "DocumentError",
    "DocumentFormat",
    "Embedder",
    "FixedSizeChunker",
    "HierarchicalChunker",
    "MetadataValue",
    "NoChunker",
    "ParsedDocument",
    "Section",
    "SemanticChunker",
    "TokenCounter",
    "chunker_from_config",
    "default_token_counter",
    "detect_format",
    "load_sidecar",
    "parse_document",
    "split_sentences",
    "token_counter",
    "validate_chunking_configuration",
]
