"""The public commands: glance-cache-api with the embedded defaults, SIGTERM, and
glance-cache-manage db sync."""

import os
import sqlite3
import subprocess

from tests import helpers


def test_embedded_defaults_keep_everything_under_data(tmp_path):
    node = helpers.Node(tmp_path, db_url=None).start()
    try:
        image = node.create_active_image(b'payload')
        assert os.path.isfile(tmp_path / 'data' / 'glance-cache.db')
        assert os.listdir(tmp_path / 'data' / 'images') == [image['id']]
        assert node.request('GET', image['file']).content == b'payload'
    finally:
        node.stop()
    assert node.proc.returncode == 0, 'SIGTERM stops the server cleanly'


def _manage(tmp_path, *args):
    conf = tmp_path / 'manage.conf'
    conf.write_text('[database]\nconnection = sqlite:///%s\n' % (tmp_path / 'db.sqlite'))
    return subprocess.run([helpers.MANAGE_COMMAND, '--config-file', str(conf), *args],
                          capture_output=True, text=True, timeout=60)


def test_db_sync_creates_schema_and_reports_revision(tmp_path):
    assert _manage(tmp_path, 'db', 'version').stdout.strip() == 'empty'
    result = _manage(tmp_path, 'db', 'sync')
    assert result.returncode == 0, result.stderr
    tables = {row[0] for row in sqlite3.connect(tmp_path / 'db.sqlite').execute(
        "SELECT name FROM sqlite_master WHERE type='table'")}
    assert {'images', 'image_properties', 'image_tags', 'alembic_version'} <= tables
    version = _manage(tmp_path, 'db', 'version').stdout.strip()
    assert version and version != 'empty'
    assert _manage(tmp_path, 'db', 'sync').returncode == 0, 'sync is idempotent'
    assert _manage(tmp_path, 'db', 'version').stdout.strip() == version


def test_manage_without_command_fails_with_usage(tmp_path):
    result = _manage(tmp_path)
    assert result.returncode != 0
    assert 'usage' in (result.stderr + result.stdout).lower()


def test_api_refuses_a_database_it_did_not_create(tmp_path):
    db = tmp_path / 'foreign.sqlite'
    sqlite3.connect(db).execute('CREATE TABLE something_else (x INTEGER)')
    node = helpers.Node(tmp_path, 'sqlite:///%s' % db)
    try:
        node.start()
    except RuntimeError as exc:
        assert 'glance-cache-manage db sync' in str(exc)
    else:
        raise AssertionError('the node started on a foreign database')
    finally:
        node.stop()
