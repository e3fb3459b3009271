"""Database fixtures: every test that takes `database_url` (or `db`) runs on SQLite and on a real PostgreSQL.

PostgreSQL comes from the `pgserver` wheel (a real server binary), started once per test session in a
temporary directory, and only when a PostgreSQL test runs; each test gets a fresh database on it, dropped
afterwards.

    postgres_url   session: the server's admin URL (psycopg2 driver)
    database_url   per test, params sqlite | postgresql: an empty database
    db             per test: open_database(database_url), a sessionmaker on the migrated database
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import close_databases, open_database


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    import pgserver

    # Not under tmp_path_factory: pgserver opens the data directory's parents to its `pgserver` user, and
    # every other pytest start on the machine closes /tmp/pytest-of-<user> again (mode 700), which makes
    # a running server PANIC. A directory of our own beside it is left alone.
    root = Path(tempfile.mkdtemp(prefix="tuneforge-pg-"))
    try:
        try:
            server = pgserver.get_server(root / "pgdata", cleanup_mode="stop")
        except Exception as exc:  # a missing server must fail the run, not silently test SQLite only
            pytest.fail(f"pgserver could not start PostgreSQL ({type(exc).__name__}: {exc})", pytrace=False)
        try:
            # e.g. postgresql://postgres:@/postgres?host=<socket dir>
            uri = make_url(server.get_uri()).set(drivername="postgresql+psycopg2")
            yield uri.render_as_string(hide_password=False)
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 't.db'}"
        close_databases()
        return
    admin_url = request.getfixturevalue("postgres_url")  # lazily, so SQLite-only runs start no server
    name = f"t_{uuid.uuid4().hex}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")  # CREATE DATABASE refuses transactions
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        close_databases()  # pooled connections would block the DROP
        with admin.connect() as connection:
            # FORCE: also ends connections of engines a test created itself and did not dispose
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def db(database_url: str) -> sessionmaker[Session]:
    return open_database(database_url)
