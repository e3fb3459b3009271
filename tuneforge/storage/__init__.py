"""Object storage: one small interface over local files and S3, chosen by the location's form.

    with storage.atomic_write("s3://bucket/out/model.bin") as f:   # visible only if the block succeeds
        f.write(data)
    with storage.open_read("/data/train.jsonl") as f:               # streams; never loads it all
        for line in f: ...

Locations: a plain local path, `file:///abs/path` or `s3://bucket/key` (see `parse_uri`). Everything here
raises only tuneforge errors: NotFound (missing object or bucket), InvalidInput (malformed location),
AccessDenied (credentials), Unavailable (endpoint unreachable), Throttled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol

from tuneforge.errors import InvalidInput
from tuneforge.storage._uri import Location, ObjectInfo, join, parse_uri, require_object
from tuneforge.storage.local import LocalStore
from tuneforge.storage.s3 import S3Store, clear_client_cache, get_client

PathOrUri = str | os.PathLike[str]


class ObjectStore(Protocol):
    """What both stores implement; locations are already parsed (and checked to name an object)."""

    def open_read(self, loc: Location) -> AbstractContextManager[BinaryIO]: ...
    def atomic_write(self, loc: Location) -> AbstractContextManager[BinaryIO]: ...
    def read_bytes(self, loc: Location) -> bytes: ...
    def write_bytes(self, loc: Location, data: bytes) -> None: ...
    def upload_file(self, local_path: Path, loc: Location) -> None: ...
    def download_file(self, loc: Location, local_path: Path) -> None: ...
    def exists(self, loc: Location) -> bool: ...
    def list_objects(self, prefix: Location) -> Iterator[ObjectInfo]: ...
    def delete(self, loc: Location) -> None: ...


_LOCAL: ObjectStore = LocalStore()
_S3: ObjectStore = S3Store()


def store_for(loc: Location) -> ObjectStore:
    return _S3 if loc.is_s3 else _LOCAL


def _object(uri: PathOrUri) -> tuple[ObjectStore, Location]:
    loc = require_object(parse_uri(uri), uri)
    return store_for(loc), loc


def _local_path(path: PathOrUri) -> Path:
    loc = require_object(parse_uri(path), path)
    if loc.is_s3:
        raise InvalidInput(f"{str(path)!r} is not a local path: pass a file system path for the local side")
    return loc.path


def open_read(uri: PathOrUri) -> AbstractContextManager[BinaryIO]:
    """Open an object for streaming reads. NotFound if it does not exist."""
    store, loc = _object(uri)
    return store.open_read(loc)


def atomic_write(uri: PathOrUri) -> AbstractContextManager[BinaryIO]:
    """Open an object for writing; it appears (or replaces the old one) only if the block exits cleanly."""
    store, loc = _object(uri)
    return store.atomic_write(loc)


def read_bytes(uri: PathOrUri) -> bytes:
    store, loc = _object(uri)
    return store.read_bytes(loc)


def write_bytes(uri: PathOrUri, data: bytes) -> None:
    """Write a whole object atomically."""
    store, loc = _object(uri)
    store.write_bytes(loc, data)


def upload_file(local_path: PathOrUri, uri: PathOrUri) -> None:
    """Copy a local file to `uri` (multipart and parallel on S3); the target appears only when complete."""
    source = _local_path(local_path)
    store, loc = _object(uri)
    store.upload_file(source, loc)


def download_file(uri: PathOrUri, local_path: PathOrUri) -> None:
    """Copy an object to a local file, atomically: the file appears only when the download completes."""
    target = _local_path(local_path)
    store, loc = _object(uri)
    store.download_file(loc, target)


def exists(uri: PathOrUri) -> bool:
    """True if the object exists. A missing S3 bucket raises NotFound rather than answering False."""
    store, loc = _object(uri)
    return store.exists(loc)


def list_objects(prefix_uri: PathOrUri) -> Iterator[ObjectInfo]:
    """Every object whose location starts with `prefix_uri` (a string prefix, as in S3: end it with '/'
    to list one "directory"), nested ones included, in sorted order; URIs come back in the prefix's form."""
    loc = parse_uri(prefix_uri)
    return store_for(loc).list_objects(loc)


def delete(uri: PathOrUri) -> None:
    """Delete one object; deleting a missing object is not an error."""
    store, loc = _object(uri)
    store.delete(loc)


__all__ = [
    "Location",
    "ObjectInfo",
    "ObjectStore",
    "LocalStore",
    "S3Store",
    "parse_uri",
    "join",
    "store_for",
    "open_read",
    "atomic_write",
    "read_bytes",
    "write_bytes",
    "upload_file",
    "download_file",
    "exists",
    "list_objects",
    "delete",
    "get_client",
    "clear_client_cache",
]
