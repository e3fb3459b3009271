"""Console sessions: who is signed in, and the CSRF token every mutating form and fetch must carry.

    store = SessionStore(home)                         # the HMAC key is created once under TUNEFORGE_HOME
    cookie, session = store.issue(access_key_id)       # None: a visitor not signed in (or a --no-auth server)
    session = store.read(cookie)                       # Session, or None when missing, forged or older than MAX_AGE

Every visitor holds a session, signed in or not, so that the sign-in form is CSRF-protected too; signing in issues
a fresh one (a new CSRF token). The cookie holds no secret: the key id, the CSRF token and the time it was signed
(itsdangerous, HMAC-SHA1 over the key below). Revoking the key ends its sessions at their next request, because
each request looks the key up again.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "tuneforge_console"
MAX_AGE = 12 * 3600  # seconds: a working day; then the console asks for the key again
KEY_FILE = "console-session.key"
_SALT = "tuneforge console session"


@dataclass(frozen=True)
class Session:
    access_key_id: str | None  # None: not signed in
    csrf: str


class SessionStore:
    def __init__(self, home: Path) -> None:
        self._serializer = URLSafeTimedSerializer(_signing_key(home), salt=_SALT)

    def issue(self, access_key_id: str | None) -> tuple[str, Session]:
        session = Session(access_key_id, secrets.token_urlsafe(32))
        return self._serializer.dumps({"k": session.access_key_id, "c": session.csrf}), session

    def read(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=MAX_AGE)
        except BadSignature:  # SignatureExpired is one: an old session is no session
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        key = data.get("k")
        return Session(key if isinstance(key, str) else None, data["c"])


def csrf_ok(session: Session | None, sent: str | None) -> bool:
    return session is not None and bool(sent) and secrets.compare_digest(session.csrf.encode(), sent.encode())


def _signing_key(home: Path) -> bytes:
    """The HMAC key, 32 random bytes made once and readable by the owner only; every server on this home shares it.
    Written to a temporary file and linked into place, so no process ever reads a half-written key."""
    path = home / KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        staging = home / f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        try:
            os.link(staging, path)
        except FileExistsError:
            pass  # another server made it first: use theirs
        finally:
            staging.unlink()
    return path.read_bytes()
