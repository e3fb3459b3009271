"""Map Bedrock's CreateKnowledgeBase `storageConfiguration` onto a vector store.

    parsed = parse_storage_configuration(request.get("storageConfiguration"))   # at CreateKnowledgeBase: no I/O
    row.storage = storage_record(parsed)                                         # stored typed, parsed never again
    store = open_store(storage_from_record(row.storage), kb_id=kb_id, dimension=384, data_dir=kb_dir)

    storageConfiguration                      store
    ----------------------------------------  -------------------------------------------------------------------
    absent / None                             SqliteStore(data_dir / "<kb_id>.sqlite"), embedded, nothing to set up
    {"type": "RDS", "rdsConfiguration": {     PgVectorStore(url, tableName, dimension)
        resourceArn*        a postgresql:// URL without password (user, host, port, database), or a reference
                            (below) to a file / variable holding one. AWS ARNs cannot be reached from here.
        credentialsSecretArn  a reference to the secret: a password, a full postgresql:// URL, or AWS's JSON
                            secret {"username": ..., "password": ...}; optional when the server needs none
        databaseName*       the database (overrides the URL's)
        tableName*          the table (a plain identifier; created with its indexes if missing)
        fieldMapping*       accepted for Bedrock compatibility; tuneforge owns its table's column layout
    }}
    {"type": "REDIS_ENTERPRISE_CLOUD",        RedisStore(url, vectorIndexName, dimension, fields)
     "redisEnterpriseCloudConfiguration": {
        endpoint*           host:port (redis:// is assumed), or a redis:// / rediss:// URL without password
        vectorIndexName*    the RediSearch index (created if missing)
        credentialsSecretArn  a reference to the secret: a password, a full redis:// URL, or JSON
                            {"username": ..., "password": ...}; optional when the server needs none
        fieldMapping*       {vectorField, textField, metadataField}: the hash field names used
    }}
    any other type                            InvalidInput on storageConfiguration.type listing these

A reference names where the secret lives, never the secret: `env:NAME` or a bare upper-case NAME (an environment
variable of the server), `file:/path` or an absolute path (a file, e.g. a mounted secret). The request (and so
GetKnowledgeBase) only ever holds the reference; it is resolved each time a store is opened, so rotations apply.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from tuneforge.errors import InvalidInput
from tuneforge.knowledge.stores.base import VectorStore

SUPPORTED_TYPES = ("RDS", "REDIS_ENTERPRISE_CLOUD")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_KB_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_FIELD = "storageConfiguration"


@dataclass(frozen=True)
class RdsStorage:
    resource: str  # a URL or a reference to one
    credentials: str | None  # a reference
    database: str
    table: str


@dataclass(frozen=True)
class RedisStorage:
    endpoint: str  # host:port, a URL, or a reference to one
    credentials: str | None  # a reference
    index: str
    vector_field: str
    text_field: str
    metadata_field: str


StorageConfiguration = RdsStorage | RedisStorage | None


def parse_storage_configuration(data: Any) -> StorageConfiguration:
    """Validate the shape (no I/O, no secret read); errors name storageConfiguration.<path>."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{_FIELD} must be an object with a type.", field=_FIELD)
    kind = data.get("type")
    supported = ", ".join(SUPPORTED_TYPES)
    if kind not in SUPPORTED_TYPES:
        raise InvalidInput(
            f"{_FIELD}.type {kind!r} is not supported here; supported: {supported} (or leave storageConfiguration "
            "out for the embedded SQLite store).",
            field=f"{_FIELD}.type",
        )
    if kind == "RDS":
        config = _object(data, "rdsConfiguration", f"{_FIELD}.rdsConfiguration")
        path = f"{_FIELD}.rdsConfiguration"
        resource = _string(config, "resourceArn", path)
        if resource.startswith("arn:"):
            raise InvalidInput(
                f"{path}.resourceArn is an AWS ARN, which a self-hosted server cannot reach; give a "
                "postgresql://user@host:5432/db URL, or a reference (env:NAME, file:/path) to one.",
                field=f"{path}.resourceArn",
            )
        if "://" in resource:
            _check_url(resource, ("postgres", "postgresql"), f"{path}.resourceArn")
        else:
            _check_reference(resource, f"{path}.resourceArn")
        credentials = _optional_reference(config, "credentialsSecretArn", path)
        table = _string(config, "tableName", path)
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$", table):
            raise InvalidInput(
                f"{path}.tableName must be a plain identifier (letters, digits, _; at most 48 characters), "
                "without a schema.",
                field=f"{path}.tableName",
            )
        database = _string(config, "databaseName", path)
        _object(config, "fieldMapping", f"{path}.fieldMapping")
        return RdsStorage(resource, credentials, database, table)
    config = _object(data, "redisEnterpriseCloudConfiguration", f"{_FIELD}.redisEnterpriseCloudConfiguration")
    path = f"{_FIELD}.redisEnterpriseCloudConfiguration"
    endpoint = _string(config, "endpoint", path)
    if "://" in endpoint:
        _check_url(endpoint, ("redis", "rediss"), f"{path}.endpoint")
    elif not (endpoint.startswith(("env:", "file:")) or re.match(r"^[\w.-]+:\d{1,5}$", endpoint)):
        raise InvalidInput(
            f"{path}.endpoint must be host:port, a redis:// or rediss:// URL, or a reference (env:NAME, file:/path).",
            field=f"{path}.endpoint",
        )
    if endpoint.startswith(("env:", "file:")):
        _check_reference(endpoint, f"{path}.endpoint")
    credentials = _optional_reference(config, "credentialsSecretArn", path)
    index = _string(config, "vectorIndexName", path)
    mapping = _object(config, "fieldMapping", f"{path}.fieldMapping")
    fields = [_string(mapping, name, f"{path}.fieldMapping") for name in ("vectorField", "textField", "metadataField")]
    return RedisStorage(endpoint, credentials, index, *fields)


def storage_record(storage: StorageConfiguration) -> dict[str, Any] | None:
    """The typed configuration as the JSON a knowledge base row keeps (its fields, and which store it is)."""
    if storage is None:
        return None
    return {"type": "RDS" if isinstance(storage, RdsStorage) else "REDIS_ENTERPRISE_CLOUD", **asdict(storage)}


def storage_from_record(record: Mapping[str, Any] | None) -> StorageConfiguration:
    """Back from `storage_record`'s JSON; nothing to check, it was checked before it was stored."""
    if record is None:
        return None
    fields = {key: value for key, value in record.items() if key != "type"}
    return RdsStorage(**fields) if record["type"] == "RDS" else RedisStorage(**fields)


def open_store(parsed: StorageConfiguration, *, kb_id: str, dimension: int, data_dir: Path) -> VectorStore:
    """Resolve the secret references, build the store and open() it (Unavailable if it cannot)."""
    if not _KB_ID.match(kb_id):
        raise InvalidInput(f"knowledge base id {kb_id!r} must be letters, digits, '_' or '-'.", field="knowledgeBaseId")
    store: VectorStore
    if parsed is None:
        from tuneforge.knowledge.stores.sqlite import SqliteStore

        store = SqliteStore(Path(data_dir) / f"{kb_id}.sqlite", dimension, kb_id)
    elif isinstance(parsed, RdsStorage):
        from tuneforge.knowledge.stores.pgvector import PgVectorStore

        path = f"{_FIELD}.rdsConfiguration"
        store = PgVectorStore(_rds_url(parsed, path), parsed.table, dimension)
    else:
        from tuneforge.knowledge.stores.redis import RedisStore

        path = f"{_FIELD}.redisEnterpriseCloudConfiguration"
        store = RedisStore(
            _redis_url(parsed, path),
            parsed.index,
            dimension,
            vector_field=parsed.vector_field,
            text_field=parsed.text_field,
            metadata_field=parsed.metadata_field,
        )
    store.open()
    return store


# ---- URLs and secrets


def _rds_url(config: RdsStorage, path: str) -> str:
    from sqlalchemy.engine import make_url

    base = config.resource if "://" in config.resource else resolve_reference(config.resource, f"{path}.resourceArn")
    username, password = None, None
    if config.credentials is not None:
        secret = resolve_reference(config.credentials, f"{path}.credentialsSecretArn")
        if "://" in secret:
            base = secret  # the secret is the whole URL
        else:
            username, password = _user_password(secret, f"{path}.credentialsSecretArn")
    try:
        url = make_url(base)
    except Exception as exc:  # sqlalchemy raises ArgumentError; never echo a URL that may hold a password
        raise InvalidInput(
            f"{path}.resourceArn does not resolve to a valid postgresql:// URL.", field=f"{path}.resourceArn"
        ) from exc
    url = url.set(drivername="postgresql", database=config.database)
    if username:
        url = url.set(username=username)
    if password is not None:
        url = url.set(password=password)
    return url.render_as_string(hide_password=False)


def _redis_url(config: RedisStorage, path: str) -> str:
    endpoint = config.endpoint
    if endpoint.startswith(("env:", "file:")):
        endpoint = resolve_reference(endpoint, f"{path}.endpoint")
    base = endpoint if "://" in endpoint else f"redis://{endpoint}"
    if config.credentials is None:
        return base
    secret = resolve_reference(config.credentials, f"{path}.credentialsSecretArn")
    if "://" in secret:
        return secret
    username, password = _user_password(secret, f"{path}.credentialsSecretArn")
    parts = urlsplit(base)
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = f"{quote(username or '', safe='')}:{quote(password or '', safe='')}@"
    return urlunsplit((parts.scheme, auth + host, parts.path, parts.query, parts.fragment))


def _user_password(secret: str, field: str) -> tuple[str | None, str]:
    """AWS's JSON secret {"username", "password"} or a bare password."""
    if secret.startswith("{"):
        try:
            data = json.loads(secret)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"the secret {field} refers to is not valid JSON.", field=field) from exc
        if not isinstance(data, dict) or not isinstance(data.get("password"), str):
            raise InvalidInput(
                f"the JSON secret {field} refers to needs a \"password\" (and optionally \"username\").", field=field
            )
        username = data.get("username")
        return (username if isinstance(username, str) else None), data["password"]
    return None, secret


def resolve_reference(reference: str, field: str) -> str:
    """Read the value a reference (env:NAME, NAME, file:/path, /path) points at; errors never show the value."""
    if reference.startswith("env:") or _ENV_NAME.match(reference):
        name = reference.removeprefix("env:")
        value = os.environ.get(name)
        if not value:
            raise InvalidInput(
                f"{field} refers to the environment variable {name}, which is not set on the server.", field=field
            )
        return value.strip()
    file = Path(reference.removeprefix("file:"))
    try:
        return file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidInput(f"{field} refers to the file {file}, which cannot be read ({exc.strerror}).", field=field) from exc


def _check_reference(reference: str, field: str) -> None:
    if reference.startswith("env:") and _ENV_NAME.match(reference[4:]):
        return
    if _ENV_NAME.match(reference):
        return
    if Path(reference.removeprefix("file:")).is_absolute():
        return
    raise InvalidInput(  # the value is not echoed: it may be the secret itself
        f"{field} must be a reference to where the secret lives (env:NAME or an upper-case environment variable "
        "name, file:/path or an absolute path), never the secret itself.",
        field=field,
    )


def _optional_reference(config: Mapping[str, Any], name: str, path: str) -> str | None:
    if config.get(name) is None:
        return None
    value = _string(config, name, path)
    if value.startswith("arn:"):
        raise InvalidInput(
            f"{path}.{name} is an AWS Secrets Manager ARN, which a self-hosted server cannot read; name an "
            "environment variable (env:NAME) or a file (file:/path) holding the secret instead.",
            field=f"{path}.{name}",
        )
    _check_reference(value, f"{path}.{name}")
    return value


def _check_url(url: str, schemes: tuple[str, ...], field: str) -> None:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme not in schemes:
        raise InvalidInput(f"{field} must be a {' or '.join(s + '://' for s in schemes)} URL.", field=field)
    if parts.password:
        raise InvalidInput(
            f"{field} contains a password; put the password in a secret and name it in credentialsSecretArn "
            "(env:NAME or file:/path) instead.",
            field=field,
        )


def _object(data: Mapping[str, Any], name: str, field: str) -> Mapping[str, Any]:
    value = data.get(name)
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} is required and must be an object.", field=field)
    return value


def _string(data: Mapping[str, Any], name: str, path: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{path}.{name} is required and must be a non-empty string.", field=f"{path}.{name}")
    return value.strip()
