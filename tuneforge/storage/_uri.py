"""Locations of stored objects: a plain local path, a `file://` URI or `s3://bucket/key`.

`parse_uri` validates once and returns a frozen `Location`; every other storage function works on that.
Local paths are made absolute (`~` expanded, `..` collapsed). S3 keys are taken verbatim (no percent
decoding, like the AWS CLI); `file://` URIs are percent-decoded as RFC 8089 says. A trailing `/` marks a
prefix (a "directory"), which object operations refuse.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote

from tuneforge.errors import InvalidInput

ACCEPTED = "a local path (/data/x.csv), a file URI (file:///data/x.csv) or an S3 URI (s3://bucket/key)"

# Only the characters are checked (legacy us-east-1 names allow upper case and '_'); anything else, such as
# a space or ':', is certainly a typo. Length and other rules are left to the server (InvalidBucketName).
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


@dataclass(frozen=True)
class Location:
    """A parsed location. `key` is the S3 key, or the absolute local path; `plain` = given as a plain path."""

    scheme: Literal["file", "s3"]
    bucket: str
    key: str
    plain: bool = False

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def is_prefix(self) -> bool:
        """True for a bucket root or a key/path ending in '/': it names a prefix, not an object."""
        return self.key == "" or self.key.endswith("/")

    @property
    def path(self) -> Path:
        """The local path (only for local locations)."""
        return Path(self.key)

    def with_key(self, key: str) -> Location:
        """Same kind and bucket, another key/path; used to name listed objects in the caller's form."""
        return replace(self, key=key)

    def __str__(self) -> str:
        if self.is_s3:
            return f"s3://{self.bucket}/{self.key}"
        return self.key if self.plain else "file://" + quote(self.key)


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object. `etag` changes when the content changes: S3's ETag (quotes stripped), or for
    local files a cheap size+mtime fingerprint (not a content hash: that would read every byte)."""

    uri: str
    size: int
    etag: str
    last_modified: datetime


def parse_uri(uri: str | os.PathLike[str]) -> Location:
    """Parse `uri`; raises InvalidInput naming it and the accepted forms."""
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInput(f"empty storage location {uri!r}: pass {ACCEPTED}")
    match = _SCHEME.match(uri)
    scheme = match.group(1).lower() if match else ""
    if scheme == "s3":
        return _parse_s3(uri)
    if scheme == "file":
        return _parse_file(uri)
    if "://" in uri:  # any other URL; a bare "name:x" stays a local path (colons are legal in file names)
        raise InvalidInput(f"unsupported storage location {uri!r}: scheme {scheme!r} is not supported; pass {ACCEPTED}")
    return _local(os.path.expanduser(uri), plain=True, original=uri)


def _parse_s3(uri: str) -> Location:
    if not uri[:5].lower() == "s3://":
        raise InvalidInput(f"malformed S3 URI {uri!r}: write it as s3://bucket/key")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise InvalidInput(f"malformed S3 URI {uri!r}: the bucket name is missing; write it as s3://bucket/key")
    if not _BUCKET.match(bucket):
        raise InvalidInput(
            f"malformed S3 URI {uri!r}: {bucket!r} is not a valid bucket name "
            "(use lower-case letters, digits, '.' and '-'); write it as s3://bucket/key"
        )
    return Location("s3", bucket, key)


def _parse_file(uri: str) -> Location:
    if not uri[:7].lower() == "file://":
        raise InvalidInput(f"malformed file URI {uri!r}: write it as file:///absolute/path")
    host, slash, path = uri[7:].partition("/")
    if host not in ("", "localhost") or not slash:
        raise InvalidInput(
            f"malformed file URI {uri!r}: only local absolute paths are supported; write it as file:///absolute/path"
        )
    return _local("/" + unquote(path), plain=False, original=uri)


def _local(path: str, *, plain: bool, original: str) -> Location:
    absolute = os.path.abspath(path)
    # abspath drops a trailing separator, but it says "prefix", so keep it.
    if original.endswith("/") and not absolute.endswith("/"):
        absolute += "/"
    return Location("file", "", absolute, plain)


def require_object(loc: Location, uri: str | os.PathLike[str]) -> Location:
    """Refuse a prefix where one object is meant (a bucket root or a key ending in '/')."""
    if loc.is_prefix:
        what = "a bucket" if loc.is_s3 and not loc.key else "a prefix (it ends with '/')"
        raise InvalidInput(f"{str(uri)!r} names {what}, not an object: add the object's name, e.g. {join(str(uri), 'file.bin')}")
    return loc


def join(base_uri: str | os.PathLike[str], *parts: str) -> str:
    """Append relative key/path parts to a location, in the same form (plain path, file:// or s3://).

    `join("s3://b/out/", "a/b.csv") == join("s3://b/out", "a", "b.csv") == "s3://b/out/a/b.csv"`. Parts must
    be relative and free of '.'/'..' so a joined name can never escape its base; a trailing '/' on the last
    part is kept (it still names a prefix). Empty parts are skipped.
    """
    base = parse_uri(base_uri)
    segments: list[str] = []
    for part in parts:
        pieces = part.split("/")
        if part.startswith("/") or "." in pieces or ".." in pieces:
            raise InvalidInput(
                f"cannot join {part!r} onto {str(base_uri)!r}: parts must be relative names without '.' or '..'"
            )
        segments += [p for p in pieces if p]  # "a//b" would be a different S3 key than "a/b"; collapse it
    tail = "/".join(segments)
    last = next((p for p in reversed(parts) if p), "")
    if last.endswith("/") and tail:
        tail += "/"
    if not tail:
        return str(base)
    key = base.key if base.key == "" or base.key.endswith("/") else base.key + "/"
    return str(base.with_key(key + tail))
