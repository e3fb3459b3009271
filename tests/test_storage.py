"""tuneforge.storage against the real file system and a real S3 API (moto's server over HTTP); no mocks.

Most tests run three times through the `root` fixture: a plain local directory, the same as a file://
URI, and a fresh S3 bucket.
"""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
from datetime import timezone
from pathlib import Path

import pytest

from tuneforge import storage
from tuneforge.errors import AccessDenied, InvalidInput, NotFound, TuneforgeError, Unavailable
from tuneforge.storage import join


class Boom(Exception):
    pass


@pytest.fixture(params=["plain", "file", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A base location with nothing under it, in each of the three forms."""
    if request.param == "s3":
        return str(request.getfixturevalue("s3_env"))
    return str(tmp_path / "store") if request.param == "plain" else (tmp_path / "store").as_uri()


def _local_files(tmp_path: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())


# --- round trips -------------------------------------------------------------------------------------


def test_write_read_round_trip(root: str) -> None:
    uri = join(root, "dir/data.bin")
    storage.write_bytes(uri, b"hello")
    assert storage.read_bytes(uri) == b"hello"
    with storage.atomic_write(uri) as f:
        f.write(b"line 1\n")
        f.write(b"line 2\n")
    with storage.open_read(uri) as f:
        assert list(f) == [b"line 1\n", b"line 2\n"]


def test_streaming_read_in_chunks(root: str) -> None:
    size, chunk = 12 * 1024 * 1024 + 17, 256 * 1024  # above the 8 MiB multipart threshold
    data = os.urandom(size)
    uri = join(root, "big.bin")
    with storage.atomic_write(uri) as f:
        for i in range(0, size, chunk):
            f.write(data[i : i + chunk])
    if uri.startswith("s3://"):  # a multipart upload's ETag is "<md5 of part md5s>-<part count>"
        assert next(storage.list_objects(uri)).etag.endswith("-2")

    digest, total, pieces = hashlib.sha256(), 0, 0
    tracemalloc.start()
    try:
        with storage.open_read(uri) as f:
            while piece := f.read(chunk):
                assert len(piece) <= chunk
                digest.update(piece)
                total, pieces = total + len(piece), pieces + 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (total, digest.digest()) == (size, hashlib.sha256(data).digest())
    assert pieces == -(-size // chunk)
    assert peak < size // 3, f"reading used {peak} bytes at peak: the object was not streamed"


# --- atomicity ---------------------------------------------------------------------------------------


def test_failed_atomic_write_leaves_nothing(root: str, tmp_path: Path) -> None:
    uri = join(root, "sub/never.bin")
    with pytest.raises(Boom):
        with storage.atomic_write(uri) as f:
            f.write(b"x" * 100_000)
            raise Boom
    assert not storage.exists(uri)
    assert list(storage.list_objects(root)) == []
    assert _local_files(tmp_path) == []  # no stray temp file


def test_overwrite_is_atomic(root: str, tmp_path: Path) -> None:
    uri = join(root, "model.bin")
    storage.write_bytes(uri, b"old")
    with storage.atomic_write(uri) as f:
        f.write(b"new content")
        assert storage.read_bytes(uri) == b"old"  # not replaced while the write is in flight
        assert [o.uri for o in storage.list_objects(root)] == [uri]  # the temp file is not listed
    assert storage.read_bytes(uri) == b"new content"

    with pytest.raises(Boom):
        with storage.atomic_write(uri) as f:
            f.write(b"half")
            raise Boom
    assert storage.read_bytes(uri) == b"new content"
    if not uri.startswith("s3://"):
        assert _local_files(tmp_path) == ["store/model.bin"]


def test_local_written_file_honours_umask(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    storage.write_bytes(str(target), b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


# --- listing, exists, delete -------------------------------------------------------------------------


def test_list_objects_prefixes_and_nesting(root: str) -> None:
    keys = ["out/a.txt", "out/sub/b.txt", "out/sub/deeper/c.txt", "outer.txt", "other/x.txt"]
    for key in keys:
        storage.write_bytes(join(root, key), key.encode())

    under_out = list(storage.list_objects(join(root, "out/")))
    assert [o.uri for o in under_out] == [join(root, k) for k in keys[:3]]
    assert [o.size for o in under_out] == [len(k) for k in keys[:3]]
    assert all(o.etag and o.last_modified.tzinfo == timezone.utc for o in under_out)

    # No trailing slash = plain string prefix, as in S3: "out" also matches "outer.txt".
    assert [o.uri for o in storage.list_objects(join(root, "out"))] == [join(root, k) for k in sorted(keys[:4])]
    assert len(list(storage.list_objects(root))) == len(keys)
    assert list(storage.list_objects(join(root, "nothing/"))) == []
    assert list(storage.list_objects(join(root, "missing-dir/deeper/"))) == []


def test_etag_changes_with_content(root: str) -> None:
    uri = join(root, "x")
    storage.write_bytes(uri, b"one")
    first = next(storage.list_objects(uri)).etag
    time.sleep(0.01)
    storage.write_bytes(uri, b"two!")
    assert next(storage.list_objects(uri)).etag != first


def test_exists_and_idempotent_delete(root: str) -> None:
    uri = join(root, "a/b.txt")
    assert not storage.exists(uri)
    storage.write_bytes(uri, b"x")
    assert storage.exists(uri)
    storage.delete(uri)
    assert not storage.exists(uri)
    storage.delete(uri)  # second delete of a missing object is fine


def test_local_exists_is_false_for_a_directory(tmp_path: Path) -> None:
    assert not storage.exists(str(tmp_path))
    with pytest.raises(InvalidInput, match="directory"):
        storage.read_bytes(str(tmp_path))


# --- upload / download -------------------------------------------------------------------------------


def test_upload_and_download_file(root: str, tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(os.urandom(300_000))
    uri = join(root, "up/src.bin")
    storage.upload_file(source, uri)
    assert storage.read_bytes(uri) == source.read_bytes()

    target = tmp_path / "dl" / "nested" / "copy.bin"  # parent directories are created
    storage.download_file(uri, target)
    assert target.read_bytes() == source.read_bytes()


def test_download_of_missing_object_leaves_no_file(root: str, tmp_path: Path) -> None:
    target = tmp_path / "dl" / "copy.bin"
    with pytest.raises(NotFound, match="does not exist"):
        storage.download_file(join(root, "missing.bin"), target)
    assert _local_files(tmp_path) == []  # neither the file nor a temp file


def test_upload_of_missing_local_file(root: str, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="nope.bin"):
        storage.upload_file(tmp_path / "nope.bin", join(root, "x"))


# --- join and URI parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "parts", "expected"),
    [
        ("s3://b/out/", ("a/b.csv",), "s3://b/out/a/b.csv"),
        ("s3://b/out", ("a", "b.csv"), "s3://b/out/a/b.csv"),
        ("s3://b", ("x",), "s3://b/x"),
        ("s3://b/", ("x/", ""), "s3://b/x/"),
        ("s3://b/out", (), "s3://b/out"),
        ("s3://b/p", ("a//b",), "s3://b/p/a/b"),
        ("/data/out/", ("a/b.csv",), "/data/out/a/b.csv"),
        ("/data/out", ("sub/",), "/data/out/sub/"),
        ("file:///data/out", ("a b.csv",), "file:///data/out/a%20b.csv"),
    ],
)
def test_join(base: str, parts: tuple[str, ...], expected: str) -> None:
    assert join(base, *parts) == expected


@pytest.mark.parametrize("part", ["/abs", "../up", "a/../../b", "./a"])
def test_join_refuses_escaping_parts(part: str) -> None:
    with pytest.raises(InvalidInput, match="relative"):
        join("s3://b/out/", part)


def test_file_uri_with_escapes_round_trips(tmp_path: Path) -> None:
    uri = join(tmp_path.as_uri(), "with space #1.txt")
    storage.write_bytes(uri, b"x")
    assert (tmp_path / "with space #1.txt").read_bytes() == b"x"
    assert [o.uri for o in storage.list_objects(tmp_path.as_uri() + "/")] == [uri]
    assert [o.uri for o in storage.list_objects(str(tmp_path) + "/")] == [str(tmp_path / "with space #1.txt")]


def test_parse_uri_forms(tmp_path: Path) -> None:
    assert storage.parse_uri("s3://bucket/a/b") == storage.Location("s3", "bucket", "a/b")
    assert storage.parse_uri("file://localhost/tmp/x").key == "/tmp/x"
    relative = storage.parse_uri("rel/x:1.txt")  # a colon is legal in a file name
    assert relative.plain and relative.key == os.path.abspath("rel/x:1.txt")


@pytest.mark.parametrize(
    "uri", ["s3://", "s3:///key", "http://x/y", "gs://b/k", "s3:bucket/k", "file://host/x", "s3://a b/k", "", "  "]
)
def test_bad_uris(uri: str) -> None:
    with pytest.raises(InvalidInput) as err:
        storage.read_bytes(uri)
    assert repr(uri) in str(err.value)
    assert "s3://bucket/key" in str(err.value) or "file:///" in str(err.value)


@pytest.mark.parametrize("uri", ["s3://bucket", "s3://bucket/dir/", "/tmp/dir/"])
def test_prefix_is_not_an_object(uri: str) -> None:
    with pytest.raises(InvalidInput, match="not an object"):
        storage.write_bytes(uri, b"x")


def test_local_path_must_be_local(s3_env: str) -> None:
    with pytest.raises(InvalidInput, match="not a local path"):
        storage.download_file(join(s3_env, "x"), join(s3_env, "y"))


# --- S3 error translation ----------------------------------------------------------------------------


def test_missing_bucket(s3_env: str) -> None:
    missing = "s3://no-such-bucket-tf/key"
    for op in (
        lambda: storage.read_bytes(missing),
        lambda: storage.write_bytes(missing, b"x"),
        lambda: storage.exists(missing),
        lambda: list(storage.list_objects("s3://no-such-bucket-tf/")),
    ):
        with pytest.raises(NotFound) as err:
            op()
        assert "S3 bucket 'no-such-bucket-tf' does not exist at http://127.0.0.1:" in str(err.value)
        assert "aws s3 mb s3://no-such-bucket-tf" in str(err.value)


def test_missing_key(s3_env: str, tmp_path: Path) -> None:
    uri = join(s3_env, "no/such.key")
    with pytest.raises(NotFound, match=f"'{uri}' does not exist"):
        storage.read_bytes(uri)
    with pytest.raises(NotFound, match=f"'{uri}' does not exist"):
        storage.download_file(uri, tmp_path / "x")


def test_missing_local_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.txt")
    with pytest.raises(NotFound, match="nope.txt"):
        storage.read_bytes(path)


def test_unreachable_endpoint_is_unavailable(closed_port_endpoint: str) -> None:
    """How fast it gives up: bench/fail_fast.py."""
    with pytest.raises(Unavailable) as err:
        storage.read_bytes("s3://bucket/key")
    assert closed_port_endpoint in str(err.value)
    assert "AWS_ENDPOINT_URL" in str(err.value)
    with pytest.raises(Unavailable):
        list(storage.list_objects("s3://bucket/"))


def test_no_credentials_is_access_denied(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AccessDenied, match="AWS_ACCESS_KEY_ID"):
        storage.read_bytes(join(s3_env, "k"))


def test_generic_endpoint_env_is_honoured(s3_env: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage.write_bytes(join(s3_env, "k"), b"v")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    assert storage.read_bytes(join(s3_env, "k")) == b"v"


def test_client_is_cached_per_configuration(s3_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = storage.get_client()
    assert storage.get_client() is client
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert storage.get_client() is not client
    assert storage.get_client().meta.region_name == "eu-west-1"


def test_errors_are_tuneforge_errors_only(closed_port_endpoint: str, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")
    for op in (
        lambda: storage.upload_file(source, "s3://bucket/k"),
        lambda: storage.download_file("s3://bucket/k", tmp_path / "g"),
        lambda: storage.exists("s3://bucket/k"),
        lambda: storage.delete("s3://bucket/k"),
    ):
        with pytest.raises(TuneforgeError) as err:
            op()
        assert type(err.value).__module__ == "tuneforge.errors"
