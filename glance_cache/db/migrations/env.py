"""Alembic environment: runs migrations on the connection glance-cache hands over."""

from alembic import context

from glance_cache.db import models

config = context.config


def run_migrations_online():
    connection = config.attributes['connection']
    context.configure(connection=connection, target_metadata=models.metadata,
                      transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
