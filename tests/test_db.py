import threading
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from tuneforge.db import create_db_engine, migrate, open_database, session_scope, utcnow
from tuneforge.db.tables import Base, FoundationModelRow, ModelAliasRow, ResourceTagRow
from tuneforge.errors import Unavailable


def test_migrations_create_every_table_and_match_the_models(database_url):
    engine = create_db_engine(database_url)
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables
    with engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diffs == [], f"tables.py and the migrations disagree: {diffs}"


def test_concurrent_migrations_on_a_fresh_database(database_url):
    errors = []

    def run():
        try:
            migrate(create_db_engine(database_url))
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_round_trip_json_and_utc_timestamps(database_url):
    sessions = open_database(database_url)
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(sessions) as session:
        session.add(FoundationModelRow(
            model_id="m", model_name="M", provider_name="P", source_kind="local", source="/x", checkpoint_path="/x",
            input_modalities=["TEXT"], output_modalities=["TEXT"], customizations_supported=["FINE_TUNING"],
            inference_types_supported=["ON_DEMAND", "PROVISIONED"], body_format="llama2", context_length=256,
            created_at=moment,
        ))
        session.add(ModelAliasRow(alias_id="meta.llama2-13b-chat-v1", target_model_id="m", body_format="llama2"))
        session.add(ResourceTagRow(resource_arn="arn:aws:bedrock:us-east-1:000000000000:custom-model/x", key="team", value="ml"))
    with sessions() as session:
        row = session.get(FoundationModelRow, "m")
        assert row.inference_types_supported == ["ON_DEMAND", "PROVISIONED"]
        assert row.created_at == moment and row.created_at.tzinfo is not None
        assert row.created_at.utcoffset() == timedelta(0)
        assert row.updated_at <= utcnow()
        assert session.scalars(select(ResourceTagRow.value)).one() == "ml"


def test_primary_key_conflict_rolls_back(database_url):
    sessions = open_database(database_url)
    with session_scope(sessions) as session:
        session.add(ModelAliasRow(alias_id="a", target_model_id="m"))
    with pytest.raises(IntegrityError):
        with session_scope(sessions) as session:
            session.add(ModelAliasRow(alias_id="a", target_model_id="other"))
    with sessions() as session:
        assert session.get(ModelAliasRow, "a").target_model_id == "m"


def test_naive_datetimes_are_refused(database_url):
    sessions = open_database(database_url)
    with pytest.raises(Exception, match="naive datetime"):
        with session_scope(sessions) as session:
            session.add(ModelAliasRow(alias_id="b", target_model_id="m", created_at=datetime(2026, 1, 1)))


def test_unreachable_database_is_unavailable_and_masks_the_password():
    with pytest.raises(Unavailable) as err:
        migrate(create_db_engine("postgresql+psycopg2://me:s3cret@127.0.0.1:1/db"))
    assert "s3cret" not in err.value.message and "***" in err.value.message
    assert "TUNEFORGE_DATABASE_URL" in err.value.message
