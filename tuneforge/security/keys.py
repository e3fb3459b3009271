"""Access keys that tuneforge issues: AWS-style pairs that boto3 signs with, and that OpenAI clients send as bearers.

    keys = AccessKeys(settings, sessions)
    issued = keys.create(name="ci", read_only=True)   # IssuedKey(access_key_id="AKIA...", secret_access_key=...)
    keys.lookup("AKIA...")                             # ActiveKey with the plaintext secret, or None if unknown/revoked

The secret is shown once, at creation. It is stored encrypted with AES-256-GCM under the keyring key
`tuneforge-access-keys` (tuneforge.security.keyring, created on first use), the key id bound in as associated
data so a ciphertext cannot be moved to another key's row. Encrypted, not hashed: SigV4 signs with the secret
itself, so the server must recover it to recompute a signature. A keyed HMAC of the secret is stored too, so a
bearer token that carries only the secret finds its key in one indexed lookup.
LIMITATIONS: as for artifacts, the keyring sits in TUNEFORGE_HOME; whoever can read both the keyring and the
database can recover every secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import session_scope
from tuneforge.db.tables import AccessKeyRow, utcnow
from tuneforge.errors import AccessDenied, Conflict, InvalidInput, NotFound
from tuneforge.security.keyring import Key, create_key, get_key
from tuneforge.settings import Settings

KEYRING_KEY_ID = "tuneforge-access-keys"
ID_PREFIX = "AKIA"  # what AWS long-term access key ids start with; boto3 and tools recognize the shape
_ID_ALPHABET = string.ascii_uppercase + "234567"  # AWS ids are base32-like upper case
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
SECRET_LENGTH = 40
NAME_MAX = 128
_NONCE = 12


@dataclass(frozen=True)
class IssuedKey:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class AccessKeyInfo:
    """What `keys list` shows: never the secret."""

    access_key_id: str
    name: str | None
    read_only: bool
    created_at: datetime
    revoked_at: datetime | None

    @property
    def status(self) -> str:
        return "Revoked" if self.revoked_at else "Active"


@dataclass(frozen=True)
class ActiveKey:
    access_key_id: str
    secret: str
    read_only: bool

    def __repr__(self) -> str:  # the secret must not reach a log line
        return f"ActiveKey({self.access_key_id!r}, read_only={self.read_only})"


class AccessKeys:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self._key: Key | None = None

    def _keyring_key(self) -> Key:
        if self._key is None:
            try:
                self._key = get_key(self.settings.home, KEYRING_KEY_ID)
            except NotFound:
                try:
                    create_key(self.settings.home, KEYRING_KEY_ID)
                except Conflict:
                    pass  # another process created it first
                self._key = get_key(self.settings.home, KEYRING_KEY_ID)
        return self._key

    def create(self, *, name: str | None = None, read_only: bool = False) -> IssuedKey:
        if name is not None and not (1 <= len(name) <= NAME_MAX and name.isprintable()):
            raise InvalidInput(f"--name must be 1-{NAME_MAX} printable characters, got {name!r}", field="--name")
        key_id = ID_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))
        secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
        with session_scope(self.sessions) as session:
            session.add(AccessKeyRow(access_key_id=key_id, name=name, read_only=read_only,
                                     secret_ciphertext=self._seal(key_id, secret), secret_digest=self._digest(secret)))
        return IssuedKey(key_id, secret)

    def list(self) -> list[AccessKeyInfo]:
        with self.sessions() as session:
            rows = session.scalars(select(AccessKeyRow).order_by(AccessKeyRow.created_at)).all()
        return [AccessKeyInfo(r.access_key_id, r.name, r.read_only, r.created_at, r.revoked_at) for r in rows]

    def revoke(self, access_key_id: str) -> AccessKeyInfo:
        with session_scope(self.sessions) as session:
            row = session.get(AccessKeyRow, access_key_id)
            if row is None:
                raise NotFound(f"no access key {access_key_id!r}: see `tuneforge keys list`", field="ACCESS_KEY_ID")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return AccessKeyInfo(row.access_key_id, row.name, row.read_only, row.created_at, row.revoked_at)

    def lookup(self, access_key_id: str) -> ActiveKey | None:
        """The active key with this id, secret decrypted; None when unknown or revoked."""
        with self.sessions() as session:
            row = session.get(AccessKeyRow, access_key_id) if len(access_key_id) <= 20 else None
        if row is None or row.revoked_at is not None:
            return None
        return ActiveKey(row.access_key_id, self._open(row.access_key_id, row.secret_ciphertext), row.read_only)

    def lookup_secret(self, secret: str) -> ActiveKey | None:
        """The active key whose secret this is (bearer tokens may carry only the secret), by its keyed digest."""
        with self.sessions() as session:
            row = session.scalars(select(AccessKeyRow).where(AccessKeyRow.secret_digest == self._digest(secret))).first()
        key = self.lookup(row.access_key_id) if row is not None else None
        if key is None or not secrets.compare_digest(key.secret.encode(), secret.encode()):
            return None
        return key

    def _digest(self, secret: str) -> str:
        # keyed, so the column alone does not let anyone test guesses of a secret offline
        return hmac.new(self._keyring_key().material, b"tuneforge access key lookup\0" + secret.encode(), hashlib.sha256).hexdigest()

    def _seal(self, key_id: str, secret: str) -> str:
        nonce = secrets.token_bytes(_NONCE)
        sealed = AESGCM(self._keyring_key().material).encrypt(nonce, secret.encode(), key_id.encode())
        return base64.b64encode(nonce + sealed).decode()

    def _open(self, key_id: str, stored: str) -> str:
        raw = base64.b64decode(stored)
        try:
            return AESGCM(self._keyring_key().material).decrypt(raw[:_NONCE], raw[_NONCE:], key_id.encode()).decode()
        except InvalidTag:
            raise AccessDenied(
                f"the secret of access key {key_id} cannot be decrypted with the keyring key {KEYRING_KEY_ID!r}: "
                "the keyring was replaced or the row altered; revoke the key and create a new one"
            ) from None
