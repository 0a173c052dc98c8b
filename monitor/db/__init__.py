"""Storage: SQLAlchemy 2 tables, the engine, Alembic migrations, API keys and the data access
functions."""
