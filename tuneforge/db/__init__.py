"""The metadata store: SQLAlchemy tables, migrations applied at open, sessions.

    sessions = open_database(settings.database_url)   # engine + `alembic upgrade head`, once per process
    with session_scope(sessions) as session:          # commits, or rolls back on error
        session.add(FoundationModelRow(...))
"""

from tuneforge.db.engine import (
    alembic_config,
    close_databases,
    create_db_engine,
    masked,
    migrate,
    open_database,
    session_scope,
)
from tuneforge.db.tables import Base, Timestamps, UtcDateTime, utcnow

__all__ = [
    "Base",
    "Timestamps",
    "UtcDateTime",
    "alembic_config",
    "close_databases",
    "create_db_engine",
    "masked",
    "migrate",
    "open_database",
    "session_scope",
    "utcnow",
]
