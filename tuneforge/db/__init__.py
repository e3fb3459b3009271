"""The metadata store: SQLAlchemy tables, migrations applied at open, sessions."""

from tuneforge.db.engine import create_db_engine, masked, migrate, open_database, session_scope
from tuneforge.db.tables import Base, Timestamps, utcnow

__all__ = ["Base", "Timestamps", "create_db_engine", "masked", "migrate", "open_database", "session_scope", "utcnow"]
