"""Engine, migrations and sessions for the metadata store (SQLite by default, PostgreSQL for scale-out).

`open_database(url)` is what callers use: it creates the engine, applies the alembic migrations shipped in
the package (once per process and URL) and returns a sessionmaker. Migrating is safe when several processes
start at once: a file lock beside the SQLite file, an advisory lock on PostgreSQL.

Limits: SQLite in WAL mode needs a local filesystem (not NFS), and a `sqlite://` in-memory database is
private to one connection. Migrations only go forward at runtime; `downgrade` is for developers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock
from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from tuneforge.errors import Unavailable

if TYPE_CHECKING:
    from alembic.config import Config

# Beside this module, so it is found the same way from a checkout and from an installed wheel.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
PG_MIGRATION_LOCK = 7_411_202  # any constant; identifies tuneforge's advisory lock among others on the server
SQLITE_BUSY_TIMEOUT_MS = 30_000  # job processes and the server write concurrently; wait rather than fail
PG_CONNECT_TIMEOUT_S = 10  # an unreachable host fails within this instead of the OS default (minutes)


def masked(url: str | URL) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_db_engine(url: str) -> Engine:
    """An engine set up for tuneforge's access pattern: a few processes, short transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        try:
            timeout = {} if "connect_timeout" in parsed.query else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
            return create_engine(url, pool_pre_ping=True, connect_args=timeout)
        except ModuleNotFoundError as exc:
            raise Unavailable(
                f"cannot use the database {masked(parsed)}: the driver {exc.name} is not installed; "
                "install it with `pip install 'tuneforge[postgres]'`"
            ) from None
    if parsed.database and parsed.database != ":memory:":
        try:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Unavailable(f"cannot create the directory for the database {masked(parsed)}: {exc}") from None
    # The sessionmaker is shared by the server's threads; each session still uses one connection at a time.
    engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")  # first: switching to WAL may wait
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer; persists in the file
        cursor.execute("PRAGMA foreign_keys=ON")  # SQLite ignores FOREIGN KEY clauses unless asked, per connection
        cursor.close()

    return engine


def alembic_config(connection: Connection) -> Config:
    """An alembic Config built in code (no alembic.ini) that runs env.py on `connection`."""
    from alembic.config import Config  # alembic costs ~150 ms to import; only migrating needs it

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration. Idempotent and safe when several processes start at once.

    Raises Unavailable when the database cannot be reached or opened.
    """
    from alembic import command

    url = engine.url
    sqlite = url.get_backend_name() == "sqlite"
    on_disk = sqlite and bool(url.database) and url.database != ":memory:"
    try:
        # SQLite has no advisory locks, and two processes creating alembic_version at once collide.
        with FileLock(f"{url.database}.migrate.lock") if on_disk else nullcontext():
            with engine.begin() as connection:
                if not sqlite:
                    # Held until this transaction commits; the loser then finds the schema at head.
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
                command.upgrade(alembic_config(connection), "head")
    except (OperationalError, OSError) as exc:  # OSError: the SQLite lock file cannot be created
        reason = " ".join(str(exc.orig if isinstance(exc, OperationalError) else exc).split())  # psycopg2's span lines
        check = (
            "check that the directory exists and is writable"
            if sqlite
            else "check that the server is running and reachable and that the user, password and database exist"
        )
        raise Unavailable(
            f"cannot open the database {masked(url)} ({reason}): {check}, and that TUNEFORGE_DATABASE_URL is right"
        ) from None


_opened: dict[str, sessionmaker[Session]] = {}
_opened_lock = threading.Lock()  # two threads opening the same URL must share one engine


def open_database(url: str) -> sessionmaker[Session]:
    """Sessions on a migrated database. The engine and migration happen once per process and URL."""
    with _opened_lock:
        if url not in _opened:
            engine = create_db_engine(url)
            try:
                migrate(engine)
            except BaseException:
                engine.dispose()
                raise
            # Rows stay readable after commit, so services can return them once the session is closed.
            _opened[url] = sessionmaker(engine, expire_on_commit=False)
        return _opened[url]


def close_databases() -> None:
    """Close the pooled connections of every database open_database() opened, and forget them.

    For server shutdown, and for tests that drop a database afterwards.
    """
    with _opened_lock:
        for sessions in _opened.values():
            sessions.kw["bind"].dispose()
        _opened.clear()


@contextmanager
def session_scope(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    with sessions() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
