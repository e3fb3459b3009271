"""Vector stores for knowledge bases: the interface (`base`), its implementations, and the mapping from Bedrock's
CreateKnowledgeBase `storageConfiguration` (`configuration`).

    store = open_store(parse_storage_configuration(request.get("storageConfiguration")), kb_id=kb_id, dimension=384,
                       data_dir=kb_dir)
    store.replace_document(uri, chunks); store.search(query_vector, k=5, filter=parse_filter(request_filter))

storageConfiguration -> store (details, secret references and errors in `configuration`):
    absent / None               SqliteStore: data_dir/<kb_id>.sqlite, embedded, exact search, nothing to set up
    type RDS                    PgVectorStore: rdsConfiguration.resourceArn is a postgresql:// URL (or a reference
                                to one), tableName the table, databaseName the database; credentialsSecretArn a
                                reference (env:NAME, file:/path) to the password / URL / {"username","password"}
    type REDIS_ENTERPRISE_CLOUD RedisStore: redisEnterpriseCloudConfiguration.endpoint (host:port or redis:// URL),
                                vectorIndexName, fieldMapping{vectorField,textField,metadataField}, and
                                credentialsSecretArn as a reference like RDS's
    anything else               InvalidInput on storageConfiguration.type listing the supported types

PgVectorStore and RedisStore import their drivers (psycopg2, redis: extras `postgres`, `redis`) only when a
knowledge base is configured to use them.
"""

from __future__ import annotations

from tuneforge.knowledge.stores.base import Hit, MetadataValue, StoredChunk, VectorStore
from tuneforge.knowledge.stores.configuration import (
    SUPPORTED_TYPES,
    RdsStorage,
    RedisStorage,
    StorageConfiguration,
    open_store,
    parse_storage_configuration,
    storage_from_record,
    storage_record,
)
from tuneforge.knowledge.stores.sqlite import SqliteStore

__all__ = [
    "SUPPORTED_TYPES",
    "Hit",
    "MetadataValue",
    "RdsStorage",
    "RedisStorage",
    "SqliteStore",
    "StorageConfiguration",
    "StoredChunk",
    "VectorStore",
    "open_store",
    "parse_storage_configuration",
    "storage_from_record",
    "storage_record",
]
