"""Alembic environment: runs on the connection :mod:`bot.store` hands in (no alembic.ini needed)."""

from alembic import context

from bot.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables there (no-op on PostgreSQL).
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
