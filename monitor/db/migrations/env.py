"""Alembic environment: runs on the connection that ``monitor.db.migrate`` hands over."""

from __future__ import annotations

from alembic import context

from monitor.db.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - we always pass a connection
    raise RuntimeError("run migrations with `tidewatch db upgrade`, which supplies a connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
