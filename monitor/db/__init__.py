"""Storage: SQLAlchemy 2 tables, the engine, Alembic migrations and the data access functions."""
