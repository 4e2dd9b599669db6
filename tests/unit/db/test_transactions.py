"""How the database layer talks to SQLite: which statements each call sends."""

import uuid

import pytest
import sqlalchemy as sa

from glance_cache.db import api as db_api
from tests.unit.cache.conftest import make_conf


@pytest.fixture
def db(tmp_path):
    database = db_api.Database(make_conf(tmp_path / 'cache'),
                               url='sqlite:///%s' % (tmp_path / 'gc.db'))
    database.ensure_schema()
    yield database
    database.dispose()


@pytest.fixture
def sent(db):
    """The SQL statements SQLite runs from here on (the driver's own COMMITs too)."""
    statements = []

    def trace(conn, _record):
        conn.set_trace_callback(lambda sql: statements.append(sql.split()[0].upper()))
    db.engine.dispose()   # so that every connection is made, and traced, anew
    sa.event.listen(db.engine, 'connect', trace)
    yield statements
    sa.event.remove(db.engine, 'connect', trace)


def _image(db):
    image_id = str(uuid.uuid4())
    db.image_create({'id': image_id, 'name': 'x', 'status': 'active', 'visibility': 'shared',
                     'owner': 'p1', 'protected': False, 'os_hidden': False,
                     'disk_format': 'raw', 'container_format': 'bare', 'size': 10,
                     'min_disk': 0, 'min_ram': 0}, {'k': 'v'}, ['t1'])
    return image_id


def test_reading_an_image_sends_its_one_select_and_no_transaction(db, sent):
    """A lone SELECT sees one snapshot; BEGIN and COMMIT around it would be
    two more statements on the path of every cache request."""
    image_id = _image(db)
    del sent[:]
    image = db.image_get(image_id)
    assert (image['properties'], image['tags']) == ({'k': 'v'}, ['t1'])
    assert sent == ['SELECT']
    with pytest.raises(db_api.errors.ImageNotFound):
        db.image_get(str(uuid.uuid4()))


def test_writes_and_other_reads_still_run_in_a_transaction(db, sent):
    del sent[:]
    image_id = _image(db)
    assert (sent[0], sent[-1]) == ('BEGIN', 'COMMIT')
    del sent[:]
    db.ping()
    assert sent == ['BEGIN', 'SELECT', 'COMMIT']
    assert db.image_get(image_id)['id'] == image_id
