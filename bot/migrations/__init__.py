"""Alembic migrations, applied at start-up by :func:`bot.store.Store.open`."""
