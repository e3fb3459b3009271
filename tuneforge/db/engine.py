"""Engine, migrations and sessions for the metadata store (SQLite by default, PostgreSQL for scale-out).

`open_database(url)` is what callers use: it creates the engine, applies the alembic migrations shipped in
the package (once per process and URL) and returns a sessionmaker. Migrating is safe when several processes
start at once: a file lock beside the SQLite file, an advisory lock on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from filelock import FileLock
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.errors import Unavailable

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 7_411_202  # any constant; identifies tuneforge's advisory lock
SQLITE_BUSY_TIMEOUT_MS = 30_000  # job processes and the server write concurrently; wait rather than fail


def masked(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def create_db_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


def _alembic_config(connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration. Idempotent and safe under concurrent starts."""
    from alembic import command

    url = engine.url
    try:
        if url.get_backend_name() == "sqlite":
            lock_path = f"{url.database}.migrate.lock" if url.database and url.database != ":memory:" else None
            with FileLock(lock_path) if lock_path else _nullcontext():
                with engine.begin() as connection:
                    command.upgrade(_alembic_config(connection), "head")
        else:
            with engine.begin() as connection:
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                command.upgrade(_alembic_config(connection), "head")
    except OperationalError as exc:
        raise Unavailable(
            f"cannot reach the database {masked(str(url))} ({exc.orig}): check that it is running and that "
            "TUNEFORGE_DATABASE_URL is right"
        ) from None


@contextmanager
def _nullcontext() -> Iterator[None]:
    yield


@lru_cache(maxsize=16)
def open_database(url: str) -> sessionmaker[Session]:
    engine = create_db_engine(url)
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)


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
