"""ClusterMember over a real SQLite database and cache: holdings, orphans, pins and budgets."""

import hashlib
import os
import uuid

import pytest
import webob

from glance_cache import cluster, errors, forward
from glance_cache.cache import queue as job_queue
from glance_cache.db import api as db_api
from tests.unit.cache.conftest import make_conf


@pytest.fixture
def setup(tmp_path):
    conf = make_conf(tmp_path / 'cache', max_size=1_000_000, pinned_max_size=500_000)
    conf.set_override('connection', 'sqlite:///%s' % (tmp_path / 'gc.db'), group='database')
    db = db_api.Database(conf)
    db.ensure_schema()
    from glance_cache import cache as cache_module
    cache = cache_module.ImageCache(conf)
    jobs = job_queue.JobQueue(cache.dir, 'n1')
    member = cluster.ClusterMember(conf, db, cache, jobs, None, 'n1')
    cache.listener = member
    member._register()
    yield member
    cache.close()
    db.dispose()


def _image(db, data):
    image_id = str(uuid.uuid4())
    return db.image_create({
        'id': image_id, 'name': 'i', 'status': 'active', 'visibility': 'public',
        'protected': False, 'os_hidden': False, 'owner': 'p', 'disk_format': 'raw',
        'container_format': 'bare', 'size': len(data),
        'checksum': hashlib.md5(data).hexdigest(), 'os_hash_algo': 'sha512',
        'os_hash_value': hashlib.sha512(data).hexdigest(), 'min_disk': 0, 'min_ram': 0,
        'location': 'file:///nowhere/%s' % image_id})


def _fill(cache, image, data):
    job, started = cache.begin_fill(image)
    assert started
    job.run(lambda: iter([data]))
    assert job.state == job.DONE, job.error


def test_commits_and_removals_are_recorded_as_they_happen(setup):
    member, db = setup, setup.db
    data = os.urandom(1000)
    image = _image(db, data)
    _fill(member.cache, image, data)
    member.wait_recorded()
    assert [n['url'] for n in db.image_holders(image['id'])] == [member.url]
    assert db.node_get('n1')['cached_bytes'] == 1000
    member.cache.delete(image['id'])
    member.wait_recorded()
    assert db.image_holders(image['id']) == []


def test_heartbeat_repairs_holdings_that_drifted(setup):
    member, db = setup, setup.db
    data = os.urandom(1000)
    image = _image(db, data)
    _fill(member.cache, image, data)
    member.wait_recorded()
    ghost = str(uuid.uuid4())
    db.node_images_record('n1', {image['id']: None})   # a write that was lost
    db.node_images_record('n1', {ghost: 5})            # and one that is wrong
    member.beat()
    assert [n['name'] for n in db.image_holders(image['id'])] == ['n1']
    assert db.image_holders(ghost) == []


def test_heartbeat_drops_images_deleted_through_another_node(setup):
    member, db = setup, setup.db
    data = os.urandom(1000)
    image = _image(db, data)
    _fill(member.cache, image, data)
    member.jobs.enqueue(image['id'], 1000)
    db.image_destroy(image['id'])
    member.beat()
    assert member.cache.get(image['id']) is None
    assert not os.path.exists(member.cache.path(image['id']))
    assert member.jobs.get(image['id']) is None


def test_pins_are_queued_oldest_first_within_the_budget(setup):
    member, db = setup, setup.db
    images = [_image(db, os.urandom(200_000)) for _ in range(3)]
    for image in images:
        db.pin_add(image['id'], [db_api.ALL_NODES])
    member.reconcile_pins()
    first, second, third = (member.jobs.get(i['id']) for i in images)
    assert first['state'] == second['state'] == job_queue.QUEUED
    # 400,000 of the 500,000 bytes are taken: the third does not fit.
    assert third['state'] == job_queue.FAILED
    assert 'over the pin budget of node n1' in third['last_error']
    assert '400000 of its 500000 bytes' in third['last_error']

    # Another look changes nothing; unpinning the first lets the third in.
    member.reconcile_pins()
    assert member.jobs.get(images[2]['id'])['finished_at'] == third['finished_at']
    db.pin_remove(images[0]['id'])
    member.reconcile_pins()
    assert member.jobs.get(images[2]['id'])['state'] == job_queue.QUEUED


def test_pins_to_other_nodes_are_not_ours(setup):
    member, db = setup, setup.db
    image = _image(db, os.urandom(100))
    db.pin_add(image['id'], ['n2'])
    member.reconcile_pins()
    assert member.jobs.get(image['id']) is None
    assert image['id'] not in member.pinned_ids()
    db.pin_add(image['id'], ['n1'])
    member.pins_changed()
    assert image['id'] in member.pinned_ids()


def test_a_failed_pinned_job_waits_before_it_is_queued_again(setup):
    member, db = setup, setup.db
    image = _image(db, os.urandom(100))
    db.pin_add(image['id'], ['n1'])
    member.jobs.record_failure(image['id'], 100, 'the store said no')
    member.reconcile_pins()
    assert member.jobs.get(image['id'])['state'] == job_queue.FAILED
    member.pin_retry_delay = 0
    member.reconcile_pins()
    assert member.jobs.get(image['id'])['state'] == job_queue.QUEUED


def test_eviction_keeps_pinned_entries(setup):
    member, db = setup, setup.db
    datas = [os.urandom(300_000) for _ in range(2)]
    pinned, other = (_image(db, d) for d in datas)
    _fill(member.cache, pinned, datas[0])
    _fill(member.cache, other, datas[1])
    db.pin_add(pinned['id'], ['n1'])
    member.pins_changed()
    # A third fill of 500,000 bytes must free 100,000 of the 600,000 held. The
    # pinned entry is the least recently used, yet only the unpinned one goes.
    third = _image(db, os.urandom(500_000))
    job, _ = member.cache.begin_fill(third)
    job.cancel('not needed')
    assert member.cache.get(pinned['id']) is not None
    assert member.cache.get(other['id']) is None


def test_self_url_defaults_to_the_address_served():
    conf = make_conf('/nonexistent-never-created')
    conf.set_override('bind_host', '127.0.0.1')
    conf.set_override('bind_port', 9300)
    assert cluster.self_url(conf) == 'http://127.0.0.1:9300'
    conf.set_override('bind_host', '::1')
    assert cluster.self_url(conf) == 'http://[::1]:9300'
    conf.set_override('self_url', 'https://node7.example.org:9292/')
    assert cluster.self_url(conf) == 'https://node7.example.org:9292'


@pytest.mark.parametrize('query, names', [
    ('', None),
    ('nodes=all', ['all']),
    ('nodes=a,b', ['a', 'b']),
    ('nodes=a&nodes=b', ['a', 'b']),
    ('nodes=%20a%20,,b', ['a', 'b']),
])
def test_requested_targets(query, names):
    assert forward.requested_targets(webob.Request.blank('/v2/cache?' + query)) == names


@pytest.mark.parametrize('query', ['nodes=', 'nodes=,', 'nodes=%20'])
def test_requested_targets_must_name_something(query):
    with pytest.raises(errors.BadRequest):
        forward.requested_targets(webob.Request.blank('/v2/cache?' + query))


def test_pins_past_the_budget_are_not_kept_from_eviction(setup):
    member, db = setup, setup.db
    datas = [os.urandom(300_000) for _ in range(2)]
    first, second = (_image(db, d) for d in datas)
    for image in (first, second):
        db.pin_add(image['id'], [db_api.ALL_NODES])
    member.pins_changed()
    # The budget (500,000) holds the first pin only; the second was cached anyway.
    assert member.pinned_ids() == {first['id']}
    _fill(member.cache, first, datas[0])
    _fill(member.cache, second, datas[1])
    third = _image(db, os.urandom(500_000))
    job, _ = member.cache.begin_fill(third)
    job.cancel('not needed')
    assert member.cache.get(first['id']) is not None
    assert member.cache.get(second['id']) is None


def test_pinning_again_adds_only_the_new_pins(setup):
    db = setup.db
    image = _image(db, os.urandom(10))
    assert db.pin_add(image['id'], ['n1']) == ['n1']
    assert db.pin_add(image['id'], ['n1', db_api.ALL_NODES]) == [db_api.ALL_NODES]
    assert sorted(p['node_name'] for p in db.pin_list(image['id'])) == ['*', 'n1']
