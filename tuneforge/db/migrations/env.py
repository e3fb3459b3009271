"""Alembic environment: always run on a connection handed in by tuneforge.db.engine.migrate().

There is no alembic.ini. To write the next migration, autogenerate it against a database at head, then
hand-check it (autogenerate misses renames and server defaults) on SQLite and PostgreSQL:

    from alembic import command
    from tuneforge.db import alembic_config, create_db_engine, migrate
    engine = create_db_engine("sqlite:////tmp/rev.db"); migrate(engine)
    with engine.begin() as connection:
        command.revision(alembic_config(connection), "what changed", autogenerate=True, rev_id="0003")
"""

from alembic import context

from tuneforge.db.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds the table instead
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
