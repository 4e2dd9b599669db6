"""Database.image_get sends its query on a pooled DBAPI connection; these tests
hold it to what the same query through SQLAlchemy returns, on every backend."""

import datetime
import uuid

import pytest
import sqlalchemy as sa

from glance_cache.db import api as db_api
from tests.unit.cache.conftest import make_conf


@pytest.fixture(scope='module', params=('sqlite', 'postgresql', 'mysql'))
def db(request, tmp_path_factory, throwaway_db_factory):
    database = db_api.Database(make_conf(tmp_path_factory.mktemp('cache')),
                               url=throwaway_db_factory(request.param))
    database.ensure_schema()
    yield database
    database.dispose()


def _through_sqlalchemy(db, image_id):
    with db._read(one_statement=True) as conn:
        return db._get(conn, image_id)


def _create(db, properties=None, tags=(), **values):
    image_id = str(uuid.uuid4())
    row = {'id': image_id, 'name': 'x', 'status': 'active', 'visibility': 'shared',
           'owner': 'p1', 'protected': False, 'os_hidden': False, 'disk_format': 'raw',
           'container_format': 'bare', 'size': 10, 'min_disk': 0, 'min_ram': 0}
    row.update(values)
    db.image_create(row, properties or {}, tags)
    return image_id


@pytest.mark.parametrize('properties, tags, values', [
    ({}, (), {}),
    ({'k': 'v'}, (), {'protected': True}),
    ({}, ('t2', 't1'), {'os_hidden': True, 'visibility': 'public'}),
    ({'hw_disk_bus': 'scsi', 'empty': '', 'ünï': 'cödé %s %(x)s'}, ('b', 'a', 'ütag'),
     {'name': None, 'owner': None, 'size': 5 * 1024 ** 4, 'virtual_size': 2 ** 40,
      'checksum': 'c' * 32, 'os_hash_algo': 'sha512', 'os_hash_value': 'f' * 128,
      'location': 'file:///images/x', 'min_disk': 3, 'min_ram': 512}),
])
def test_the_direct_read_returns_what_sqlalchemy_does(db, properties, tags, values):
    image_id = _create(db, properties, tags, **values)
    image = db.image_get(image_id)
    assert image == _through_sqlalchemy(db, image_id)
    assert image['properties'] == properties
    assert image['tags'] == sorted(tags)
    # Converted as SQLAlchemy would: booleans, not 0/1; datetimes, not strings.
    assert image['protected'] is values.get('protected', False)
    assert image['os_hidden'] is values.get('os_hidden', False)
    assert isinstance(image['created_at'], datetime.datetime)
    assert image['size'] == values.get('size', 10)


def test_an_unknown_image_is_not_found(db):
    with pytest.raises(db_api.errors.ImageNotFound):
        db.image_get(str(uuid.uuid4()))


def test_timestamps_keep_their_microseconds(db):
    image_id = _create(db)
    with db.engine.begin() as conn:
        conn.execute(db_api.models.images.update().where(db_api.models.images.c.id == image_id)
                     .values(updated_at=datetime.datetime(2026, 1, 2, 3, 4, 5, 678901)))
    assert db.image_get(image_id)['updated_at'] == datetime.datetime(2026, 1, 2, 3, 4, 5, 678901)


def test_a_failing_read_raises_sqlalchemys_error(tmp_path):
    """The direct read falls back to the SQLAlchemy path, whose exceptions
    callers know, and leaves no connection checked out."""
    db = db_api.Database(make_conf(tmp_path / 'cache'), url='sqlite:///%s' % (tmp_path / 'gc.db'))
    db.ensure_schema()
    try:
        image_id = _create(db)
        with db.engine.begin() as conn:
            conn.exec_driver_sql('DROP TABLE image_tags')
        for _ in range(db.engine.pool.size() + 2):
            with pytest.raises(sa.exc.OperationalError, match='image_tags'):
                db.image_get(image_id)
        assert db.engine.pool.checkedout() == 0
    finally:
        db.dispose()
