"""The migrations build exactly the schema that db/models.py declares."""

import alembic.command
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from glance_cache.db import api as db_api
from glance_cache.db import models
from tests.unit.cache.conftest import make_conf


def _database(tmp_path):
    conf = make_conf(tmp_path / 'cache')
    return db_api.Database(conf, url='sqlite:///%s' % (tmp_path / 'gc.db'))


def test_migrated_schema_matches_the_models(tmp_path):
    db = _database(tmp_path)
    try:
        db.ensure_schema()
        assert db.current_revision() == db.head_revision()
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), models.metadata) == []
    finally:
        db.dispose()


def test_a_database_one_migration_behind_is_refused_until_synced(tmp_path):
    db = _database(tmp_path)
    try:
        with db.engine.begin() as conn:
            alembic.command.upgrade(db._alembic_config(conn), '0001')
        try:
            db.ensure_schema()
        except RuntimeError as exc:
            assert 'glance-cache-manage db sync' in str(exc)
        else:
            raise AssertionError('an outdated schema was accepted')
        db.sync()
        db.ensure_schema()
        assert 'nodes' in sa.inspect(db.engine).get_table_names()
    finally:
        db.dispose()
