"""Alembic's entry point: migrations run on the connection `migrate.upgrade()` hands over,
inside its transaction (which holds the migration lock), never on a connection of their
own."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
