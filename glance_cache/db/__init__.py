"""Metadata database: models, queries (api.py) and Alembic migrations."""
