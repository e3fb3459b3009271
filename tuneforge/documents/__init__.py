"""Documents: parse a file (PDF, Markdown, text, HTML, DOCX) into clean text with page numbers, then split it
into chunks as Bedrock's chunkingConfiguration asks. Used by knowledge-base ingestion (tuneforge.knowledge)
and by `tuneforge data from-docs` (tuneforge.data). See `parsing` and `chunking` for usage and limits.

    document = parse_document("act.pdf", data)                 # raises DocumentError: count it failed, go on
    chunks = chunker_from_config(chunking_configuration, tokenizer=tokenizer).chunk(document)
"""

from __future__ import annotations

from tuneforge.documents.chunking import (
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
from tuneforge.documents.chunking_config import ChunkingSettings, ChunkingStrategy, validate_chunking_configuration
from tuneforge.documents.document import DocumentError, DocumentFormat, ParsedDocument, Section
from tuneforge.documents.parsing import (
    MAX_DOCUMENT_BYTES,
    MAX_SIDECAR_BYTES,
    SIDECAR_SUFFIX,
    MetadataValue,
    detect_format,
    load_sidecar,
    parse_document,
)
from tuneforge.documents.sentences import split_sentences

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
