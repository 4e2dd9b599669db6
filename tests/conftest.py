"""Fixtures shared by all tests: real nodes over real databases."""

import os

import pytest

from tests import helpers

DB_BACKENDS = ('sqlite', 'postgresql', 'mysql')


@pytest.fixture(scope='session')
def throwaway_db_factory(tmp_path_factory):
    created = []

    def make(backend):
        db = helpers.ThrowawayDatabase(backend)
        db.create(str(tmp_path_factory.mktemp('db-%s' % backend)))
        created.append(db)
        return db.url

    yield make
    for db in created:
        db.drop()


@pytest.fixture(scope='module', params=DB_BACKENDS)
def node(request, tmp_path_factory, throwaway_db_factory):
    """A node per database backend, shared by the tests of one module.

    Tests on a shared node work only with images they create themselves.
    """
    url = throwaway_db_factory(request.param)
    n = helpers.Node(tmp_path_factory.mktemp('node-%s' % request.param), url)
    n.backend = request.param
    n.start()
    yield n
    n.stop()


@pytest.fixture
def sqlite_node_factory(tmp_path):
    """Start nodes with their own SQLite database and options; stopped at test end."""
    nodes = []

    def make(options=None, name='node', server_args=()):
        workdir = tmp_path / name
        os.makedirs(workdir, exist_ok=True)
        n = helpers.Node(workdir, 'sqlite:///%s' % (workdir / 'glance-cache.db'), options,
                         server_args)
        nodes.append(n)
        return n.start()

    yield make
    for n in nodes:
        n.stop()


@pytest.fixture(scope='module')
def stalled_node(tmp_path_factory):
    """A SQLite node whose caching worker never runs: what is queued stays queued.

    Its cache still fills from downloads, so a test can hold cached and queued images at
    once. ``node.cache_dir`` is its cache directory.
    """
    workdir = tmp_path_factory.mktemp('stalled-node')
    cache_dir = os.path.join(str(workdir), 'cache')
    lock = helpers.HeldWorkerLock(cache_dir)
    n = helpers.Node(workdir, 'sqlite:///%s' % (workdir / 'glance-cache.db'),
                     {'cache': {'cache_dir': cache_dir}})
    n.cache_dir = cache_dir
    try:
        n.start()
        yield n
    finally:
        n.stop()
        lock.release()
