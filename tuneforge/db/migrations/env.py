"""Alembic environment: always run with a connection handed in by tuneforge.db.engine.migrate()."""

from alembic import context

from tuneforge.db.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds tables instead
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
