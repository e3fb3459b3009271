"""CreateKnowledgeBase / UpdateKnowledgeBase, CreateDataSource and StartIngestionJob requests, checked once at the
edge (tuneforge.wire.knowledge builds them from Bedrock's shapes for the HTTP API and the CLI) before anything is
stored; and the runtime's: a retrievalConfiguration (Retrieve, RetrieveAndGenerate) and a Rerank request. Errors
name the Bedrock field. What needs the catalog (is the model an embedding model or a reranker, do chunks fit it)
is the service's to check.

    request = KnowledgeBaseRequest(name="docs", role_arn=ROLE, embedding_model="sentence-transformers.all-minilm-l6-v2")
    kbs.create_knowledge_base(request)

The `*_configuration` fields keep the configuration objects as sent, because Get* returns them as they came;
the typed fields next to them (`storage`, `location`, `chunking`) are what tuneforge acts on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tuneforge.documents.chunking_config import ChunkingSettings, ChunkingStrategy
from tuneforge.errors import InvalidInput
from tuneforge.knowledge.filters import Filter
from tuneforge.knowledge.stores.configuration import StorageConfiguration

NAME = re.compile(r"^([0-9a-zA-Z][_-]?){1,100}$")  # Bedrock's name pattern for knowledge bases and data sources
MAX_DESCRIPTION = 200
MAX_CLIENT_TOKEN = 256


class DataDeletionPolicy(StrEnum):
    RETAIN = "RETAIN"  # deleting the data source keeps its chunks in the store
    DELETE = "DELETE"


@dataclass(frozen=True)
class KnowledgeBaseRequest:
    name: str
    role_arn: str
    embedding_model: str  # embeddingModelArn: a catalog model id or a foundation-model ARN
    dimensions: int | None = None  # what embeddingModelConfiguration asked for; must match the model
    storage: StorageConfiguration = None  # None: the embedded SQLite store
    description: str | None = None
    client_token: str | None = None
    configuration: Mapping[str, Any] = field(default_factory=dict)  # knowledgeBaseConfiguration as sent
    storage_configuration: Mapping[str, Any] | None = None  # storageConfiguration as sent

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        check_description(self.description)
        check_client_token(self.client_token)
        if not isinstance(self.embedding_model, str) or not self.embedding_model:
            raise InvalidInput("knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration.embeddingModelArn is required",
                               field="knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration.embeddingModelArn")
        if self.dimensions is not None and (not isinstance(self.dimensions, int) or self.dimensions < 1):
            raise InvalidInput(f"dimensions must be a positive integer, got {self.dimensions!r}",
                               field="knowledgeBaseConfiguration.vectorKnowledgeBaseConfiguration.embeddingModelConfiguration")


@dataclass(frozen=True)
class DataSourceRequest:
    name: str
    location: str  # where the documents are listed from, as a tuneforge.storage location (s3://..., file://...)
    chunking: ChunkingSettings = ChunkingSettings(ChunkingStrategy.DEFAULT)
    data_deletion_policy: DataDeletionPolicy = DataDeletionPolicy.DELETE
    description: str | None = None
    client_token: str | None = None
    configuration: Mapping[str, Any] = field(default_factory=dict)  # dataSourceConfiguration as sent
    vector_ingestion_configuration: Mapping[str, Any] | None = None  # as sent; ingestion chunks by it

    def __post_init__(self) -> None:
        check_name(self.name, "name")
        check_description(self.description)
        check_client_token(self.client_token)
        if not isinstance(self.data_deletion_policy, DataDeletionPolicy):
            raise InvalidInput(f"dataDeletionPolicy {self.data_deletion_policy!r} is invalid: use RETAIN or DELETE",
                               field="dataDeletionPolicy")
        if not self.location.startswith(("s3://", "file://")):
            raise InvalidInput(f"dataSourceConfiguration names {self.location!r}: expected an S3 bucket or a file:// folder",
                               field="dataSourceConfiguration.s3Configuration.bucketArn")


@dataclass(frozen=True)
class IngestionRequest:
    description: str | None = None
    client_token: str | None = None

    def __post_init__(self) -> None:
        check_description(self.description)
        check_client_token(self.client_token)


class SearchType(StrEnum):
    SEMANTIC = "SEMANTIC"  # cosine similarity to the query's embedding (the default)
    HYBRID = "HYBRID"  # the vector and the BM25 ranking fused (tuneforge.knowledge.retrieve)


class MetadataSelection(StrEnum):
    ALL = "ALL"
    SELECTIVE = "SELECTIVE"


@dataclass(frozen=True)
class RerankingSettings:
    """vectorSearchConfiguration.rerankingConfiguration: rerank the numberOfResults candidates, keep the best
    `number_of_reranked_results`. With `metadata` set, the chosen metadata fields are appended to the text the
    reranker reads (tuneforge.knowledge.rerank.reranker_text)."""

    model: str  # modelArn as sent: a catalog model id or a foundation-model ARN
    model_field: str  # the wire path of modelArn, which an error about the model names
    number_of_reranked_results: int | None = None  # None: every candidate, reordered
    metadata: MetadataSelection | None = None  # None: the passage's text alone
    fields_to_include: tuple[str, ...] | None = None  # SELECTIVE: only these (in this order) ...
    fields_to_exclude: tuple[str, ...] = ()  # ... or every field but these


@dataclass(frozen=True)
class RetrievalConfiguration:
    """retrievalConfiguration.vectorSearchConfiguration, checked (tuneforge.wire.knowledge.retrieval_configuration)."""

    number_of_results: int = 5  # Bedrock's default; with reranking, the candidates the reranker reads
    search_type: SearchType = SearchType.SEMANTIC
    filter: Filter | None = None
    reranking: RerankingSettings | None = None

    @property
    def page_size(self) -> int:
        """How many results one response carries."""
        if self.reranking is not None and self.reranking.number_of_reranked_results is not None:
            return self.reranking.number_of_reranked_results
        return self.number_of_results


@dataclass(frozen=True)
class RerankSource:
    text: str  # what the reranker reads: the text document, or the JSON document serialized
    document: Mapping[str, Any]  # the RerankDocument as sent, returned with its result


@dataclass(frozen=True)
class RerankRequest:
    """Rerank's input members, checked (tuneforge.wire.knowledge.rerank_request)."""

    MODEL_FIELD = "rerankingConfiguration.bedrockRerankingConfiguration.modelConfiguration.modelArn"
    query: str
    sources: tuple[RerankSource, ...]
    model: str
    number_of_results: int | None = None  # None: every source


def check_name(name: Any, field_name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidInput(f"{field_name} {name!r} is invalid: use 1-100 letters and digits, single '_' or '-' between them",
                           field=field_name)
    return name


def check_description(description: Any) -> None:
    if description is not None and (not isinstance(description, str) or not 1 <= len(description) <= MAX_DESCRIPTION):
        raise InvalidInput(f"description must be 1-{MAX_DESCRIPTION} characters", field="description")


def check_client_token(token: Any) -> None:
    if token is not None and (not isinstance(token, str) or not 1 <= len(token) <= MAX_CLIENT_TOKEN):
        raise InvalidInput(f"clientToken must be 1-{MAX_CLIENT_TOKEN} characters", field="clientToken")
