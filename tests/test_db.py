"""The metadata store on SQLite and on a real PostgreSQL (fixtures in tests/fixtures_db.py). No mocks.

    pytest -p tests.fixtures_db tests/test_db.py
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, make_url, select, update
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import alembic_config, create_db_engine, migrate, open_database, session_scope, utcnow
from tuneforge.db.engine import MIGRATIONS_DIR
from tuneforge.db.tables import Base, FoundationModelRow, ModelAliasRow, ResourceTagRow
from tuneforge.errors import Unavailable

HEAD = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
TAGGED_ARN = "arn:aws:bedrock:us-east-1:000000000000:custom-model/x"


def revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def foundation_model(**overrides: object) -> FoundationModelRow:
    values: dict = dict(
        model_id="acme.tiny-v1", model_name="Tiny", provider_name="Acme", source_kind="local", source="/models/tiny",
        checkpoint_path="/models/tiny", input_modalities=["TEXT"], output_modalities=["TEXT", "EMBEDDING"],
        customizations_supported=["FINE_TUNING", "CONTINUED_PRE_TRAINING"],
        inference_types_supported=["ON_DEMAND", "PROVISIONED"], response_streaming_supported=False,
        body_format="llama2", context_length=4096,
    )
    return FoundationModelRow(**(values | overrides))


# ---- migrations -------------------------------------------------------------------------------------


def test_migrations_create_every_table(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        migrate(engine)
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
        assert revision(engine) == HEAD
    finally:
        engine.dispose()


def test_migrating_again_is_a_no_op(db: sessionmaker[Session]) -> None:
    with session_scope(db) as session:
        session.add(ModelAliasRow(alias_id="a", target_model_id="m"))
    engine = db.kw["bind"]
    migrate(engine)
    migrate(engine)
    assert revision(engine) == HEAD
    with db() as session:
        assert session.get(ModelAliasRow, "a").target_model_id == "m"  # the row survived both runs


def test_tables_match_the_migrations(db: sessionmaker[Session]) -> None:
    """What `alembic check` does: a new column in tables.py without a migration fails here."""
    with db.kw["bind"].connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diffs == [], f"tables.py and the migrations disagree; write a migration: {diffs}"


def test_migrations_downgrade_and_upgrade_again(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        migrate(engine)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate(engine)
        assert revision(engine) == HEAD
    finally:
        engine.dispose()


@pytest.mark.slow  # several processes, each importing the stack
def test_processes_migrating_a_fresh_database_at_once_all_succeed(database_url: str) -> None:
    script = "import sys; from tuneforge.db import create_db_engine, migrate; migrate(create_db_engine(sys.argv[1]))"
    procs = [
        subprocess.Popen([sys.executable, "-c", script, database_url], stderr=subprocess.PIPE, text=True)
        for _ in range(3)  # enough to collide on alembic_version without the lock; few enough to stay fast
    ]
    failures = [err for p in procs if (err := p.communicate(timeout=60)[1]) and p.returncode != 0]
    assert failures == []
    engine = create_db_engine(database_url)
    try:
        assert revision(engine) == HEAD
    finally:
        engine.dispose()


# ---- rows -------------------------------------------------------------------------------------------


def test_foundation_model_round_trip(db: sessionmaker[Session]) -> None:
    with session_scope(db) as session:
        session.add(foundation_model())
        session.add(foundation_model(model_id="acme.hub-v1", source_kind="hub", body_format=None, context_length=None))
    with db() as session:
        row = session.get(FoundationModelRow, "acme.tiny-v1")
        hub = session.get(FoundationModelRow, "acme.hub-v1")
    assert row.output_modalities == ["TEXT", "EMBEDDING"]
    assert row.customizations_supported == ["FINE_TUNING", "CONTINUED_PRE_TRAINING"]
    assert row.inference_types_supported == ["ON_DEMAND", "PROVISIONED"]
    assert row.response_streaming_supported is False and row.context_length == 4096
    assert row.lifecycle_status == "ACTIVE"  # the default
    assert (hub.source_kind, hub.body_format, hub.context_length) == ("hub", None, None)


def test_alias_and_tag_round_trip(db: sessionmaker[Session]) -> None:
    with session_scope(db) as session:
        # No foreign key: an alias may point at a built-in model that has no row.
        session.add(ModelAliasRow(alias_id="meta.llama2-13b-chat-v1", target_model_id="builtin", body_format="llama2"))
        session.add(ResourceTagRow(resource_arn=TAGGED_ARN, key="team", value="ml"))
        session.add(ResourceTagRow(resource_arn=TAGGED_ARN, key="cost-center", value=""))
    with db() as session:
        alias = session.get(ModelAliasRow, "meta.llama2-13b-chat-v1")
        tags = session.execute(select(ResourceTagRow.key, ResourceTagRow.value).order_by(ResourceTagRow.key)).all()
    assert (alias.target_model_id, alias.body_format) == ("builtin", "llama2")
    assert [tuple(t) for t in tags] == [("cost-center", ""), ("team", "ml")]


def test_timestamps_come_back_aware_in_utc(db: sessionmaker[Session]) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=timezone(timedelta(hours=2)))
    before = utcnow()
    with session_scope(db) as session:
        session.add(foundation_model(created_at=moment))
        session.add(ModelAliasRow(alias_id="a", target_model_id="m"))
    with db() as session:
        row = session.get(FoundationModelRow, "acme.tiny-v1")
        alias = session.get(ModelAliasRow, "a")
    assert row.created_at == moment and row.created_at.utcoffset() == timedelta(0)
    assert row.created_at.hour == 1  # 03:04 at +02:00, stored and returned as UTC
    assert before <= alias.created_at <= utcnow() and alias.created_at.tzinfo is not None


def test_updated_at_moves_on_update(db: sessionmaker[Session]) -> None:
    with session_scope(db) as session:
        session.add(ModelAliasRow(alias_id="a", target_model_id="m"))
    with db() as session:
        created = session.get(ModelAliasRow, "a").updated_at
    time.sleep(0.01)  # timestamps have microsecond resolution on both backends
    with session_scope(db) as session:
        session.execute(update(ModelAliasRow).where(ModelAliasRow.alias_id == "a").values(target_model_id="n"))
    with db() as session:
        row = session.get(ModelAliasRow, "a")
    assert row.updated_at > created and row.created_at == created


def test_naive_datetimes_are_refused(db: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        with session_scope(db) as session:
            session.add(ModelAliasRow(alias_id="b", target_model_id="m", created_at=datetime(2026, 1, 1)))


@pytest.mark.parametrize(
    "make",
    [
        lambda target: ModelAliasRow(alias_id="a", target_model_id=target),
        lambda target: ResourceTagRow(resource_arn=TAGGED_ARN, key="team", value=target),
        lambda target: foundation_model(model_name=target),
    ],
    ids=["alias", "tag", "foundation_model"],
)
def test_primary_key_conflict_raises_and_keeps_the_first_row(db: sessionmaker[Session], make) -> None:
    with session_scope(db) as session:
        session.add(make("first"))
    with pytest.raises(IntegrityError):
        with session_scope(db) as session:
            session.add(make("second"))
    with db() as session:
        assert len(session.scalars(select(type(make("x")))).all()) == 1


def test_session_scope_rolls_back_when_the_block_raises(db: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError):
        with session_scope(db) as session:
            session.add(ModelAliasRow(alias_id="a", target_model_id="m"))
            session.flush()
            raise RuntimeError("boom")
    with db() as session:
        assert session.get(ModelAliasRow, "a") is None


def test_open_database_migrates_once_per_url(db: sessionmaker[Session], database_url: str) -> None:
    assert open_database(database_url) is db


# ---- unreachable ------------------------------------------------------------------------------------


def test_unreachable_postgres_is_unavailable_with_the_password_masked() -> None:
    """How fast it gives up: bench/fail_fast.py."""
    url = "postgresql+psycopg2://me:s3cret@127.0.0.1:1/db"  # port 1: nothing listens, refused at once
    with pytest.raises(Unavailable) as err:
        open_database(url)
    message = err.value.message
    assert "s3cret" not in message and "me:***@127.0.0.1:1/db" in message
    assert "running" in message and "TUNEFORGE_DATABASE_URL" in message


def test_missing_postgres_database_is_unavailable(postgres_url: str) -> None:
    url = make_url(postgres_url).set(database="no_such_db").render_as_string(hide_password=False)
    with pytest.raises(Unavailable, match="no_such_db"):
        open_database(url)


def test_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(Unavailable, match="cannot create the directory"):
        open_database(f"sqlite:///{tmp_path / 'a-file' / 't.db'}")
    (tmp_path / "a-dir").mkdir()
    with pytest.raises(Unavailable, match="writable"):
        open_database(f"sqlite:///{tmp_path / 'a-dir'}")  # a directory, not a database file
