"""The local keyring: named 256-bit keys that encrypt custom-model artifacts at rest (tuneforge's stand-in for KMS).

    python -m tuneforge.security.keyring create [KEY_ID]   # prints the new key's id (never the key)
    python -m tuneforge.security.keyring list

Keys live in `<TUNEFORGE_HOME>/keyring.json`, mode 0600, rewritten atomically (temporary file + rename) under a
file lock: {"version": 1, "keys": {"<key id>": {"key": "<base64 of 32 bytes>", "createdAt": "<ISO time>"}}}.
Key ids accept Bedrock's `customModelKmsKeyId` forms, each normalized to one keyring entry:
    1234abcd-...                                  -> 1234abcd-...
    arn:aws:kms:us-east-1:111122223333:key/1234abcd-...  -> 1234abcd-...
    alias/prod  or  arn:aws:kms:...:alias/prod    -> alias/prod   (an alias is its own entry, not a pointer)

Key bytes never appear in a message, a log line or a repr: `Key` hides them.
LIMITATIONS: a file on the same disk as the artifacts, so it protects against copies of the artifact
directory (backups, a shared volume), not against someone who can read the whole home directory.
Keys cannot be rotated or deleted here: a model encrypted under a deleted key could never be read again.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import re
import secrets
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock

from tuneforge.errors import AccessDenied, Conflict, InvalidInput, NotFound

KEYRING_FILE = "keyring.json"
KEY_BYTES = 32  # AES-256
FIELD = "customModelKmsKeyId"  # the Bedrock request field a key id arrives in
_ID = r"[A-Za-z0-9_-]{1,256}"
_ALIAS = r"alias/[A-Za-z0-9/_-]{1,250}"
_KEY_ID = re.compile(rf"^(?:arn:aws[a-z-]*:kms:[a-z0-9-]*:[0-9]{{0,12}}:(?:key/(?P<arn_id>{_ID})|(?P<arn_alias>{_ALIAS}))"
                     rf"|(?P<alias>{_ALIAS})|(?P<id>{_ID}))$")
CREATE_HINT = "python -m tuneforge.security.keyring create"


@dataclass(frozen=True)
class Key:
    """A key and its normalized id. `material` is left out of repr and str so it cannot leak into logs."""

    key_id: str
    material: bytes = field(repr=False)

    def __str__(self) -> str:
        return f"key {self.key_id!r}"


def normalize_key_id(key_id: str) -> str:
    """The keyring entry a key id, alias or KMS ARN names. Raises InvalidInput for anything else."""
    match = _KEY_ID.match(key_id or "")
    if not match:
        raise InvalidInput(
            f"{key_id!r} is not a key id: use an id ([A-Za-z0-9_-]), alias/NAME, or arn:aws:kms:REGION:ACCOUNT:key/ID",
            field=FIELD,
        )
    return next(value for value in match.groupdict().values() if value)


def keyring_path(home: Path) -> Path:
    return home / KEYRING_FILE


def create_key(home: Path, key_id: str | None = None) -> str:
    """Add a random 256-bit key under `key_id` (a random UUID, as KMS uses, when None) and return its id."""
    normalized = normalize_key_id(key_id) if key_id is not None else str(uuid.uuid4())
    path = keyring_path(home)
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):  # two processes creating keys at once must not lose one
        keys = _read(path)
        if normalized in keys:
            raise Conflict(f"key {normalized!r} already exists in {path}: pick another id", field=FIELD)
        keys[normalized] = {"key": base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode(),
                            "createdAt": datetime.now(timezone.utc).isoformat()}
        _write(path, keys)
    return normalized


def get_key(home: Path, key_id: str) -> Key:
    """The key named by `key_id` (any accepted form). NotFound says how to create it."""
    normalized = normalize_key_id(key_id)
    path = keyring_path(home)
    entry = _read(path).get(normalized)
    if entry is None:
        raise NotFound(f"no key {normalized!r} in the keyring {path}: create it with `{CREATE_HINT} {normalized}` "
                       f"(TUNEFORGE_HOME={home}), then retry", field=FIELD)
    try:
        material = base64.b64decode(entry["key"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        material = b""  # reported below, without echoing what the file holds
    if len(material) != KEY_BYTES:
        raise InvalidInput(f"key {normalized!r} in {path} is not {KEY_BYTES} base64-encoded bytes: restore the keyring from a backup")
    return Key(normalized, material)


def list_keys(home: Path) -> list[str]:
    """The ids in the keyring, sorted."""
    return sorted(_read(keyring_path(home)))


def _read(path: Path) -> dict[str, dict]:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if os.name == "posix" and mode & 0o077:  # as ssh does with private keys: refuse rather than use an exposed key
        raise AccessDenied(f"the keyring {path} can be read by other users (mode {mode & 0o777:o}): run `chmod 600 {path}`")
    try:
        document = json.loads(path.read_text())
        keys = document["keys"]
    except (ValueError, KeyError, TypeError):
        keys = None  # `from None` below: a decode error can carry the file's text, which holds keys
    if not isinstance(keys, dict):
        raise InvalidInput(f"the keyring {path} is not valid keyring JSON: restore it from a backup") from None
    return keys


def _write(path: Path, keys: dict[str, dict]) -> None:
    # mkstemp creates the file 0600 before any key is written to it; the rename makes the new keyring appear whole
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump({"version": 1, "keys": keys}, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    from tuneforge.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="add a random key; prints its id")
    create.add_argument("key_id", nargs="?", help="id, alias/NAME or KMS key ARN (default: a random UUID)")
    commands.add_parser("list", help="print the key ids")
    args = parser.parse_args(argv)
    home = load_settings().home
    if args.command == "create":
        print(create_key(home, args.key_id))
    else:
        print("\n".join(list_keys(home)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
