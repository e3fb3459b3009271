"""Encryption of artifact directories at rest: AES-256-GCM, streamed in chunks (weights can be many GB).

    encrypt_dir(plain_dir, encrypted_dir, key, context=model_id)      # encrypted_dir must not exist
    copy = decrypt_dir(encrypted_dir, run_dir, key, context=model_id)  # a new 0700 directory; the caller removes it

Layout: each file `a/b.bin` becomes `a/b.bin.enc`, and `.tuneforge-manifest.enc` (same format) lists the files,
so a removed or added file is noticed. Each `.enc` file is a header and then chunks:

    header  b"TFAE" | version u8 (=1) | chunk_size u32 | salt 32 B | commitment 32 B | id_len u16 | key id (UTF-8)
    chunk i AES-GCM(file_key, nonce = 7 zero bytes | i u32 | final u8, plaintext[i*chunk_size : (i+1)*chunk_size])
            with associated data = header | context | relative path | i | final   (length-prefixed, big-endian)

file_key and commitment are HKDF-SHA256(key, salt) (64 bytes, split in two): a fresh key per file, so the
nonce need only be unique within the file, which the chunk index makes it. The final flag marks the last chunk.
So a chunk cannot be changed, reordered, dropped, moved to another file or model, nor the file truncated or
extended, without the authentication failing. The header holds the key's id, never the key.

Errors: a key of another id, or the same id with other bytes (the commitment does not match), raises
AccessDenied; anything else that fails to authenticate or parse raises InvalidInput naming the file and chunk.
LIMITATIONS: file names and sizes (to a chunk) are visible; decryption writes plaintext to disk, so the
decrypted copy must be removed by whoever asked for it.
"""

from __future__ import annotations

import hmac
import io
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tuneforge.errors import AccessDenied, InvalidInput
from tuneforge.security.keyring import Key

MAGIC = b"TFAE"  # tuneforge artifact encryption
VERSION = 1
SUFFIX = ".enc"
MANIFEST = ".tuneforge-manifest.enc"
CHUNK_SIZE = 1 << 20  # 1 MiB: the 16-byte tag per chunk is noise, and memory stays at a few chunks
MAX_CHUNK_SIZE = 64 << 20  # a header asking for more is corrupt; reading it would only waste memory
TAG_BYTES = 16
SALT_BYTES = 32
_FIXED = struct.Struct(">4sBI32s32sH")  # magic, version, chunk_size, salt, commitment, key id length
_INFO = b"tuneforge artifact v1"


def encrypt_dir(src: Path, dst: Path, key: Key, *, context: str = "", chunk_size: int = CHUNK_SIZE) -> None:
    """Encrypt every file under `src` into a new directory `dst`. `context` (the model id) binds the files to it."""
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidInput(f"chunk_size must be 1..{MAX_CHUNK_SIZE} bytes, got {chunk_size}")
    files = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    if MANIFEST.removesuffix(SUFFIX) in files:
        raise InvalidInput(f"{src} holds a file named {MANIFEST.removesuffix(SUFFIX)!r}, the name the manifest needs: rename it")
    dst.mkdir(parents=True)
    for name in files:
        target = dst / (name + SUFFIX)
        target.parent.mkdir(parents=True, exist_ok=True)
        with (src / name).open("rb") as plain, target.open("xb") as out:
            _encrypt(plain, out, key, name=name, context=context, chunk_size=chunk_size)
    manifest = json.dumps({"files": files}).encode()
    with (dst / MANIFEST).open("xb") as out:
        _encrypt(io.BytesIO(manifest), out, key, name=MANIFEST, context=context, chunk_size=chunk_size)


def decrypt_dir(src: Path, into: Path, key: Key, *, context: str = "") -> Path:
    """Decrypt `src` into a new private directory (0700, files 0600) under `into` and return it.

    The caller deletes it. On any error nothing decrypted is left behind.
    """
    into.mkdir(mode=0o700, parents=True, exist_ok=True)
    dst = Path(tempfile.mkdtemp(dir=into))  # mkdtemp makes it 0700
    try:
        manifest = io.BytesIO()
        with _open_encrypted(src / MANIFEST, MANIFEST) as f:
            _decrypt(f, manifest, key, name=MANIFEST, context=context)
        for name in json.loads(manifest.getvalue())["files"]:
            parts = PurePosixPath(name).parts
            if PurePosixPath(name).is_absolute() or ".." in parts:
                raise InvalidInput(f"{src}: the manifest names {name!r}, outside the artifact directory")
            target = dst.joinpath(*parts)
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with _open_encrypted(src / (name + SUFFIX), name) as f:
                private = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # 0600 before a byte is written
                with os.fdopen(private, "wb") as out:
                    _decrypt(f, out, key, name=name, context=context)
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    return dst


def _open_encrypted(path: Path, name: str) -> BinaryIO:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise InvalidInput(f"{path} is missing: the encrypted artifact of {name!r} was removed or never written") from None


def _keys(key: Key, salt: bytes) -> tuple[AESGCM, bytes]:
    derived = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=_INFO).derive(key.material)
    return AESGCM(derived[:32]), derived[32:]


def _nonce(index: int, final: bool) -> bytes:
    return bytes(7) + struct.pack(">IB", index, final)


def _aad(header: bytes, context: str, name: str, index: int, final: bool) -> bytes:
    c, n = context.encode(), name.encode()
    return header + struct.pack(">I", len(c)) + c + struct.pack(">I", len(n)) + n + struct.pack(">IB", index, final)


def _encrypt(plain: BinaryIO, out: BinaryIO, key: Key, *, name: str, context: str, chunk_size: int) -> None:
    salt = os.urandom(SALT_BYTES)
    aead, commitment = _keys(key, salt)
    key_id = key.key_id.encode()
    header = _FIXED.pack(MAGIC, VERSION, chunk_size, salt, commitment, len(key_id)) + key_id
    out.write(header)
    current, index = plain.read(chunk_size), 0
    while True:  # read one chunk ahead: the last chunk (maybe empty, for an empty file) carries final=1
        following = plain.read(chunk_size)
        final = not following
        out.write(aead.encrypt(_nonce(index, final), current, _aad(header, context, name, index, final)))
        if final:
            return
        current, index = following, index + 1
        if index >= 1 << 32:
            raise InvalidInput(f"{name} is too large for chunk_size {chunk_size}: use a larger chunk_size")


def _decrypt(f: BinaryIO, out: BinaryIO, key: Key, *, name: str, context: str) -> None:
    fixed = f.read(_FIXED.size)
    if len(fixed) < _FIXED.size or fixed[:4] != MAGIC:
        raise InvalidInput(f"{name}: not a tuneforge encrypted file (bad header)")
    _, version, chunk_size, salt, commitment, id_len = _FIXED.unpack(fixed)
    if version != VERSION:
        raise InvalidInput(f"{name}: encryption format version {version}; this tuneforge reads version {VERSION}: upgrade it")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidInput(f"{name}: corrupt header (chunk size {chunk_size})")
    stored_id = f.read(id_len)
    header = fixed + stored_id
    if stored_id != key.key_id.encode():
        raise AccessDenied(f"{name} is encrypted under key {stored_id.decode(errors='replace')!r}, not {key.key_id!r}")
    aead, expected = _keys(key, salt)
    if not hmac.compare_digest(commitment, expected):
        raise AccessDenied(f"{name}: key {key.key_id!r} in the keyring is not the key it was encrypted with "
                           "(was the key re-created?), or the file header is corrupt")
    block = chunk_size + TAG_BYTES
    current, index = f.read(block), 0
    while True:
        following = f.read(block)
        final = not following
        try:
            out.write(aead.decrypt(_nonce(index, final), current, _aad(header, context, name, index, final)))
        except InvalidTag:
            raise InvalidInput(f"{name}: chunk {index} failed authentication: the file is corrupt, truncated, reordered "
                               "or comes from another file or model; restore it or re-run the job") from None
        if final:
            return
        current, index = following, index + 1
