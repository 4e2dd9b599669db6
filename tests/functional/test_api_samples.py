"""The JSON samples of the API reference are what real nodes answer.

Every file under ``api-ref/source/samples/`` is named below: a response
sample by the ``@recipe`` that makes the request it documents, a request
sample by the recipe that sends it. A sample file that no recipe names fails
(``test_sample``), and so does a recipe that names a missing file.

A recipe brings its node(s) to a known state through the API, makes the
documented request and returns the response; ``compare`` then holds the
response's JSON against the sample:

* the same keys at every level, lists of the same length, and values of the
  same JSON type (an integer is not a float, null is its own type);
* equal values, except where a value depends on the request or the moment:
  the fields in ``VARIABLE`` (times, sizes, hashes) only have to be of the
  sample's type and look right, and in every string the UUIDs and the
  ``scheme://host:port`` of URLs are masked before comparing (numbers too in
  error messages and job errors).

The recipes run on one node (``env.node``), and on a cluster of three nodes
(``env.cluster``) sharing one SQLite database and one store, of which node3
has been killed so that it is reported down. Both are started on first use.
A recipe that reads state its node keeps (the cache, jobs, pins) starts by
clearing it and waits for any fill it starts before it returns.

To write a new sample: add it and its recipe, then run this module with
``GLANCE_CACHE_SAMPLES_DUMP=/some/dir`` to see what the node answered there.
"""

import concurrent.futures
import functools
import json
import os
import re
import signal
import uuid

import pytest

from glance_cache import router
from tests import helpers
from tests.functional import faulty_store

MiB = 1024 * 1024

API_REF_DIR = os.path.join(helpers.ROOT, 'api-ref', 'source')
SAMPLES_DIR = os.path.join(API_REF_DIR, 'samples')
DUMP_DIR = os.environ.get('GLANCE_CACHE_SAMPLES_DUMP')

# The callers of the samples (noauth mode: identity headers are trusted). Their
# ids appear in the samples as owner and created_by.
ADMIN = {'X-Auth-Token': 'admin', 'X-Project-Id': '3c1f0e9b8a2d4f5e9b7c6d5a4e3f2a1b',
         'X-User-Id': '8e2d7c6b5a4f4e3d9c2b1a0f9e8d7c6b'}
MEMBER = {'X-Auth-Token': 'demo', 'X-Project-Id': 'a7c4e2f09b1d4c3e8f6a5b4c3d2e1f0a',
          'X-User-Id': '5b9e3d1c7a2f4e6b8d0c9a7f5e3b1d2c'}

# Cluster timing as in tests/cluster: a killed node is down within seconds.
CLUSTER = {'heartbeat_interval': '0.3', 'node_timeout': '2'}
UP_NODES = 'node1,node2'

# -- comparing a response with a sample -------------------------------------------

ISO_TIME = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')
URL_ORIGIN = re.compile(r'https?://[^/\s"\']+')
NUMBER = re.compile(r'\d+(\.\d+)?')


def _time(value):
    """An ISO 8601 UTC time (image records) or epoch seconds (cache, cluster)."""
    if isinstance(value, str):
        return bool(ISO_TIME.match(value))
    return isinstance(value, (int, float)) and value > 1e9


def _non_negative(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _hex(length):
    pattern = re.compile(r'^[0-9a-f]{%d}$' % length)
    return lambda value: bool(pattern.match(value))


# Fields whose value depends on the moment or the data: checked by form only.
VARIABLE = {
    'created_at': _time, 'updated_at': _time, 'last_accessed': _time,
    'last_modified': _time, 'queued_at': _time, 'started_at': _time, 'finished_at': _time,
    'next_attempt_at': _time, 'last_heartbeat': _time,
    'heartbeat_age': _non_negative,
    'size': _non_negative, 'virtual_size': _non_negative, 'bytes_done': _non_negative,
    'cached_bytes': _non_negative, 'pinned_bytes': _non_negative,
    'total_bytes_cleaned': _non_negative, 'total_bytes_pruned': _non_negative,
    'checksum': _hex(32), 'os_hash_value': _hex(128),
}
# Free text whose numbers (ages, sizes) vary too.
MESSAGES = frozenset(('message', 'last_error'))


def _masked(text, key):
    text = URL_ORIGIN.sub('<url>', UUID.sub('<uuid>', text))
    if key in MESSAGES:
        text = NUMBER.sub('<n>', text)
    return text


def compare(expected, actual, path='', key=None):
    """The differences between a sample and a response, as messages (none: they match)."""
    where = path or 'the document'
    if type(expected) is not type(actual):
        return ['%s: a %s in the sample, a %s in the response (%r)'
                % (where, type(expected).__name__, type(actual).__name__, actual)]
    if isinstance(expected, dict):
        problems = []
        if set(expected) != set(actual):
            problems.append('%s: keys only in the sample %s, only in the response %s'
                            % (where, sorted(set(expected) - set(actual)),
                               sorted(set(actual) - set(expected))))
        for name in expected:
            if name in actual:
                problems += compare(expected[name], actual[name], '%s.%s' % (path, name), name)
        return problems
    if isinstance(expected, list):
        if len(expected) != len(actual):
            return ['%s: %d items in the sample, %d in the response'
                    % (where, len(expected), len(actual))]
        problems = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            problems += compare(e, a, '%s[%d]' % (path, i), key)
        return problems
    if expected is None:
        return []
    if key in VARIABLE:
        return [] if VARIABLE[key](actual) and VARIABLE[key](expected) else [
            '%s: %r (response) or %r (sample) does not look like a %s'
            % (where, actual, expected, key)]
    if isinstance(expected, str):
        if _masked(expected, key) != _masked(actual, key):
            return ['%s: %r in the sample, %r in the response' % (where, expected, actual)]
        return []
    return [] if expected == actual else [
        '%s: %r in the sample, %r in the response' % (where, expected, actual)]


# -- the index: sample file -> recipe ------------------------------------------------

RECIPES = {}


class Recipe:
    def __init__(self, func, requests):
        self.func = func
        self.requests = requests


def recipe(sample, requests=()):
    """Register ``func(env)`` as the recipe of response sample ``sample``.

    ``requests`` names the request samples the recipe sends (``env.sample``).
    The function returns the response to compare, or a list of them.
    """
    def register(func):
        assert sample not in RECIPES, 'two recipes for %s' % sample
        RECIPES[sample] = Recipe(func, tuple(requests))
        return func
    return register


def request_samples():
    return {name: response for response, r in RECIPES.items() for name in r.requests}


def sample_files():
    return sorted(name for name in os.listdir(SAMPLES_DIR) if name.endswith('.json'))


# -- nodes and their state -----------------------------------------------------------


class Env:
    """The nodes the recipes use, started on first use, and the store of held images."""

    def __init__(self, tmp_path_factory):
        self._tmp = tmp_path_factory
        self._started = []
        self._held = []
        self.used = set()

    @functools.cached_property
    def node(self):
        """One node; a small cache so that pruning has something to do."""
        workdir = self._tmp.mktemp('samples-node')
        node = helpers.Node(workdir, 'sqlite:///%s' % (workdir / 'glance-cache.db'),
                            {'DEFAULT': {'node_name': 'node1'},
                             'cache': {'max_size': str(20 * MiB), 'low_watermark': '0.5'}})
        node.cache_dir = os.path.join(node.workdir, 'data', 'cache')
        self._started.append(node)
        return node.start()

    @functools.cached_property
    def cluster(self):
        """node1 and node2 up, node3 registered but down (killed): {name: Node}."""
        workdir = self._tmp.mktemp('samples-cluster')
        db_url = 'sqlite:///%s' % (workdir / 'glance-cache.db')
        nodes = {}
        for name in ('node1', 'node2', 'node3'):
            nodes[name] = helpers.Node(workdir / name, db_url, {
                'DEFAULT': {'node_name': name},
                'glance_store': {'filesystem_store_datadir': str(workdir / 'images')},
                'cluster': CLUSTER})
            self._started.append(nodes[name])
        # The first node migrates the empty database; the others then start together.
        nodes['node1'].start()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(helpers.Node.start, (nodes['node2'], nodes['node3'])))
        helpers.wait_for(lambda: _states(nodes['node1']) == {
            'node1': 'up', 'node2': 'up', 'node3': 'up'}, 'three nodes up')
        nodes['node3'].stop(sig=signal.SIGKILL)
        helpers.wait_for(lambda: _states(nodes['node1']).get('node3') == 'down',
                         'node3 reported down', timeout=20)
        return nodes

    @functools.cached_property
    def store(self):
        return faulty_store.FaultyStore()

    def sample(self, name):
        """A request sample's JSON, noted as used by the running recipe."""
        self.used.add(name)
        return load(name)

    def held_image(self, node, size=8 * MiB, at=4 * MiB):
        """An active image whose store read stops after ``at`` bytes until released."""
        data = os.urandom(size)
        image = active_image(node, data)
        url = self.store.add(data, [faulty_store.hold(at)])
        faulty_store.point_image_at(node, image['id'], url)
        served = self.store.image(url)
        self._held.append(served)
        return image

    def release(self):
        """Let every held store read go on."""
        for served in self._held:
            served.release()
        self._held = []

    def close(self):
        self.release()
        with concurrent.futures.ThreadPoolExecutor(max(len(self._started), 1)) as pool:
            list(pool.map(helpers.Node.stop, self._started))
        if 'store' in self.__dict__:
            self.store.close()


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    e = Env(tmp_path_factory)
    yield e
    e.close()


def load(name):
    with open(os.path.join(SAMPLES_DIR, name)) as f:
        return json.load(f)


def call(node, method, path, who=ADMIN, headers=None, **kwargs):
    return node.request(method, path, token=None, headers={**who, **(headers or {})},
                        **kwargs)


def expect(resp, status):
    assert resp.status_code == status, '%s %s: %s %s' % (
        resp.request.method, resp.request.url, resp.status_code, resp.text)
    return resp


def active_image(node, data, who=ADMIN, **body):
    body.setdefault('name', 'image-%s' % uuid.uuid4().hex[:8])
    body.setdefault('disk_format', 'raw')
    body.setdefault('container_format', 'bare')
    image = expect(call(node, 'POST', '/v2/images', who, json=body), 201).json()
    expect(call(node, 'PUT', '/v2/images/%s/file' % image['id'], who, data=data,
                headers={'Content-Type': 'application/octet-stream'}), 204)
    return expect(call(node, 'GET', '/v2/images/%s' % image['id'], who), 200).json()


def _states(node):
    nodes = expect(call(node, 'GET', '/v2/cache/cluster'), 200).json()['nodes']
    return {n['name']: n['state'] for n in nodes}


def job(node, image_id):
    resp = call(node, 'GET', '/v2/cache/jobs/%s' % image_id)
    return resp.json() if resp.status_code == 200 else None


def wait_state(node, image_id, state, done=None):
    """Wait until the job of ``image_id`` is in ``state`` (and ``done(job)``)."""
    def check():
        record = job(node, image_id)
        return (record is not None and record['state'] == state
                and (done is None or done(record)))
    helpers.wait_for(check, 'image %s %s on %s' % (image_id, state, node.url))


def cache_now(node, image_id):
    expect(call(node, 'PUT', '/v2/cache/%s' % image_id), 202)
    wait_state(node, image_id, 'cached')


def reset(node):
    """An empty cache and queue on ``node``."""
    expect(call(node, 'DELETE', '/v2/cache'), 204)
    assert expect(call(node, 'GET', '/v2/cache/jobs'), 200).json() == {'jobs': []}


def reset_cluster(nodes):
    """No pins, and empty caches and queues on the nodes that are up."""
    node1 = nodes['node1']
    for pin in expect(call(node1, 'GET', '/v2/cache/pins'), 200).json()['pins']:
        expect(call(node1, 'DELETE', '/v2/cache/pins/%s' % pin['image_id']), 204)
    for name in UP_NODES.split(','):
        reset(nodes[name])


# -- versions and schemas -------------------------------------------------------------


@recipe('versions-response.json')
def _versions(env):
    # GET / answers the same document with 300 Multiple Choices.
    return [expect(env.node.request('GET', '/versions', token=None), 200),
            expect(env.node.request('GET', '/', token=None), 300)]


@recipe('schema-image-response.json')
def _schema_image(env):
    return expect(call(env.node, 'GET', '/v2/schemas/image'), 200)


@recipe('schema-images-response.json')
def _schema_images(env):
    return expect(call(env.node, 'GET', '/v2/schemas/images'), 200)


# -- images ---------------------------------------------------------------------------


@recipe('image-create-response.json', requests=['image-create-request.json'])
def _image_create(env):
    resp = expect(call(env.node, 'POST', '/v2/images',
                       json=env.sample('image-create-request.json')), 201)
    assert resp.headers['Location'].endswith('/v2/images/%s' % resp.json()['id'])
    return resp


@recipe('image-show-response.json', requests=['image-create-request.json'])
def _image_show(env):
    image = expect(call(env.node, 'POST', '/v2/images',
                        json=env.sample('image-create-request.json')), 201).json()
    expect(call(env.node, 'PUT', '/v2/images/%s/file' % image['id'], data=os.urandom(MiB),
                headers={'Content-Type': 'application/octet-stream'}), 204)
    return expect(call(env.node, 'GET', '/v2/images/%s' % image['id']), 200)


@recipe('image-update-response.json',
        requests=['image-create-request.json', 'image-update-request.json'])
def _image_update(env):
    image = expect(call(env.node, 'POST', '/v2/images',
                        json=env.sample('image-create-request.json')), 201).json()
    return expect(call(env.node, 'PATCH', '/v2/images/%s' % image['id'],
                       data=json.dumps(env.sample('image-update-request.json')),
                       headers={'Content-Type':
                                'application/openstack-images-v2.1-json-patch'}), 200)


@recipe('images-list-response.json')
def _images_list(env):
    # A member sees the images of their project (and public ones; no recipe makes any):
    # the two newest of these three are the first page.
    for name in ('debian-12', 'fedora-40'):
        expect(call(env.node, 'POST', '/v2/images', MEMBER,
                    json={'name': name, 'disk_format': 'qcow2',
                          'container_format': 'bare'}), 201)
    active_image(env.node, os.urandom(MiB), MEMBER, name='ubuntu-24.04',
                 disk_format='qcow2', tags=['lts'], os_distro='ubuntu')
    return expect(call(env.node, 'GET', '/v2/images?limit=2', MEMBER), 200)


# -- the cache of one node ------------------------------------------------------------


def _cached_queued_caching(env):
    """One image cached, one held mid-fill and one queued behind it (one worker thread)."""
    node = env.node
    cached = active_image(node, os.urandom(MiB))
    cache_now(node, cached['id'])
    held = env.held_image(node)
    expect(call(node, 'PUT', '/v2/cache/%s' % held['id']), 202)
    wait_state(node, held['id'], 'caching', lambda r: r['bytes_done'] > 0)
    queued = active_image(node, os.urandom(MiB))
    expect(call(node, 'PUT', '/v2/cache/%s' % queued['id']), 202)
    return cached, held, queued


def _finish(env, node, image_id):
    """Release held reads and wait for the last queued image to be cached."""
    env.release()
    wait_state(node, image_id, 'cached')


@recipe('cache-list-response.json')
def _cache_list(env):
    node = env.node
    reset(node)
    cached, _held, queued = _cached_queued_caching(env)
    expect(call(node, 'GET', '/v2/images/%s/file' % cached['id']), 200)
    try:
        return expect(call(node, 'GET', '/v2/cache'), 200)
    finally:
        _finish(env, node, queued['id'])


@recipe('cache-jobs-list-response.json')
def _cache_jobs(env):
    node = env.node
    reset(node)
    # A job fails for good when the store has lost the image's data.
    lost = active_image(node, os.urandom(MiB))
    os.unlink(os.path.join(node.store_dir, lost['id']))
    expect(call(node, 'PUT', '/v2/cache/%s' % lost['id']), 202)
    wait_state(node, lost['id'], 'failed')
    # Then one cached, one caching and one queued: oldest first, as listed.
    _cached, _held, queued = _cached_queued_caching(env)
    try:
        return expect(call(node, 'GET', '/v2/cache/jobs'), 200)
    finally:
        _finish(env, node, queued['id'])


@recipe('cache-job-show-response.json')
def _cache_job(env):
    node = env.node
    reset(node)
    image = active_image(node, os.urandom(MiB))
    cache_now(node, image['id'])
    return expect(call(node, 'GET', '/v2/cache/jobs/%s' % image['id']), 200)


@recipe('cache-clean-response.json')
def _cache_clean(env):
    node = env.node
    reset(node)
    # Quarantined data, and a fill whose process is gone (no lock on the file).
    for directory, size in (('invalid', 3 * MiB), ('incomplete', MiB)):
        with open(os.path.join(node.cache_dir, directory, str(uuid.uuid4())), 'wb') as f:
            f.write(os.urandom(size))
    return expect(call(node, 'POST', '/v2/cache/clean'), 200)


@recipe('cache-prune-response.json')
def _cache_prune(env):
    # 12 MiB cached over a low watermark of 10 MiB: the older one goes.
    node = env.node
    reset(node)
    for _ in range(2):
        cache_now(node, active_image(node, os.urandom(6 * MiB))['id'])
    return expect(call(node, 'POST', '/v2/cache/prune'), 200)


# -- errors ---------------------------------------------------------------------------


@recipe('error-not-found-response.json')
def _error_not_found(env):
    return expect(call(env.node, 'GET', '/v2/images/%s' % uuid.uuid4()), 404)


@recipe('error-forbidden-response.json')
def _error_forbidden(env):
    # The member sees their own image, but caching is for admins by default.
    image = active_image(env.node, os.urandom(MiB), MEMBER)
    return expect(call(env.node, 'PUT', '/v2/cache/%s' % image['id'], MEMBER), 403)


@recipe('error-bad-request-response.json')
def _error_bad_request(env):
    image = expect(call(env.node, 'POST', '/v2/images',
                        json={'name': 'empty', 'disk_format': 'raw',
                              'container_format': 'bare'}), 201).json()
    return expect(call(env.node, 'PUT', '/v2/cache/%s' % image['id']), 400)


# -- several nodes --------------------------------------------------------------------


def _cluster_image(env, size=MiB):
    nodes = env.cluster
    reset_cluster(nodes)
    return nodes, active_image(nodes['node1'], os.urandom(size))


def _wait_cached_on(nodes, image_id, names=UP_NODES):
    for name in names.split(','):
        wait_state(nodes[name], image_id, 'cached')


@recipe('cache-queue-nodes-response.json')
def _queue_on_nodes(env):
    nodes, image = _cluster_image(env)
    resp = expect(call(nodes['node1'], 'PUT', '/v2/cache/%s?nodes=%s' % (image['id'],
                                                                         UP_NODES)), 202)
    _wait_cached_on(nodes, image['id'])
    return resp


@recipe('cache-queue-multi-status-response.json')
def _queue_on_all(env):
    nodes, image = _cluster_image(env)
    resp = expect(call(nodes['node2'], 'PUT', '/v2/cache/%s?nodes=all' % image['id']), 207)
    _wait_cached_on(nodes, image['id'])
    return resp


@recipe('cache-delete-nodes-response.json')
def _delete_on_nodes(env):
    nodes, image = _cluster_image(env)
    expect(call(nodes['node1'], 'PUT', '/v2/cache/%s?nodes=%s' % (image['id'], UP_NODES)),
           202)
    _wait_cached_on(nodes, image['id'])
    return expect(call(nodes['node1'], 'DELETE',
                       '/v2/cache/%s?nodes=%s' % (image['id'], UP_NODES)), 200)


@recipe('cache-clear-nodes-response.json')
def _clear_on_nodes(env):
    nodes, _image = _cluster_image(env)
    return expect(call(nodes['node1'], 'DELETE', '/v2/cache?nodes=%s' % UP_NODES,
                       headers={'x-image-cache-clear-target': 'queue'}), 200)


@recipe('cache-job-nodes-response.json')
def _job_on_nodes(env):
    nodes, image = _cluster_image(env)
    expect(call(nodes['node1'], 'PUT', '/v2/cache/%s?nodes=%s' % (image['id'], UP_NODES)),
           202)
    _wait_cached_on(nodes, image['id'])
    return expect(call(nodes['node2'], 'GET',
                       '/v2/cache/jobs/%s?nodes=%s' % (image['id'], UP_NODES)), 200)


@recipe('cache-image-nodes-response.json')
def _image_nodes(env):
    nodes, image = _cluster_image(env)
    expect(call(nodes['node1'], 'PUT', '/v2/cache/%s?nodes=%s' % (image['id'], UP_NODES)),
           202)
    _wait_cached_on(nodes, image['id'])
    # Each node records its holding just after its commit.
    path = '/v2/cache/nodes/%s' % image['id']
    helpers.wait_for(lambda: len(call(nodes['node1'], 'GET', path).json()) == 2,
                     'both holders recorded')
    return expect(call(nodes['node1'], 'GET', path), 200)


@recipe('cluster-show-response.json')
def _cluster_view(env):
    # node1 holds one image, pinned to it; node2 is caching one; node3 is down.
    nodes, image = _cluster_image(env)
    node1, node2 = nodes['node1'], nodes['node2']
    expect(call(node1, 'PUT', '/v2/cache/pins/%s?nodes=node1' % image['id']), 201)
    wait_state(node1, image['id'], 'cached')
    held = env.held_image(node2)
    expect(call(node2, 'PUT', '/v2/cache/%s' % held['id']), 202)
    wait_state(node2, held['id'], 'caching', lambda r: r['bytes_done'] > 0)

    def settled():
        resp = expect(call(node1, 'GET', '/v2/cache/cluster'), 200)
        by_name = {n['name']: n for n in resp.json()['nodes']}
        n1, n2 = by_name['node1'], by_name['node2']
        running = n2['running_jobs']
        return resp if (n1['cached_images'] == 1 and n1['pinned_images'] == 1
                        and not n1['running_jobs'] and n1['queued_jobs'] == 0
                        and n2['cached_images'] == 0 and len(running) == 1
                        and running[0]['bytes_done'] > 0) else None
    try:
        return helpers.wait_for(settled, 'the cluster view to show both nodes\' state')
    finally:
        env.release()
        wait_state(node2, held['id'], 'cached')


@recipe('pins-list-response.json')
def _pins_list(env):
    nodes, image = _cluster_image(env)
    node1 = nodes['node1']
    other = active_image(node1, os.urandom(MiB))
    expect(call(node1, 'PUT', '/v2/cache/pins/%s' % image['id']), 201)
    expect(call(node1, 'PUT', '/v2/cache/pins/%s?nodes=%s' % (other['id'], UP_NODES)), 201)
    try:
        return expect(call(node1, 'GET', '/v2/cache/pins'), 200)
    finally:
        _wait_cached_on(nodes, image['id'])
        _wait_cached_on(nodes, other['id'])


@recipe('pin-create-response.json')
def _pin_create(env):
    nodes, image = _cluster_image(env)
    resp = expect(call(nodes['node1'], 'PUT', '/v2/cache/pins/%s' % image['id']), 201)
    _wait_cached_on(nodes, image['id'])
    return resp


# -- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize('name', sorted(set(sample_files()) | set(RECIPES)))
def test_sample(env, name):
    """A response sample matches what its recipe's request gets; a request sample is sent."""
    if name in request_samples():
        assert name in sample_files(), 'a recipe sends %s, which does not exist' % name
        load(name)  # valid JSON; its recipe (%s) sends it and checks the answer
        return
    if name not in RECIPES:
        pytest.fail('%s has no recipe in %s: add one that makes the request it documents'
                    % (name, __name__))
    assert name in sample_files(), 'recipe for %s, which does not exist' % name
    env.used = set()
    try:
        result = RECIPES[name].func(env)
    finally:
        env.release()
    assert env.used == set(RECIPES[name].requests), (
        'the recipe of %s declares request samples %s but sent %s'
        % (name, sorted(RECIPES[name].requests), sorted(env.used)))
    responses = result if isinstance(result, list) else [result]
    expected = load(name)
    for resp in responses:
        assert resp.headers['Content-Type'].startswith('application/json'), resp.headers
        actual = resp.json()
        if DUMP_DIR:
            os.makedirs(DUMP_DIR, exist_ok=True)
            with open(os.path.join(DUMP_DIR, name), 'w') as f:
                json.dump(actual, f, indent=4)
                f.write('\n')
        problems = compare(expected, actual)
        assert not problems, '%s differs from %s %s:\n  %s\nThe response:\n%s' % (
            name, resp.request.method, resp.request.path_url, '\n  '.join(problems),
            json.dumps(actual, indent=4))


# Served outside the router, by the middleware stack (deploy.py).
NODE_OPERATIONS = {('GET', '/healthcheck'), ('GET', '/metrics')}


def test_every_route_is_in_the_api_reference():
    routes = {(method, path)
              for table in (router.ROUTE_DECLARATIONS, router.CACHE_ROUTE_DECLARATIONS)
              for path, methods in table.items() for method in methods}
    documented = set()
    for name in os.listdir(API_REF_DIR):
        if name.endswith('.inc'):
            with open(os.path.join(API_REF_DIR, name)) as f:
                documented.update(tuple(m.groups()) for m in re.finditer(
                    r'^\.\. rest_method:: (\S+) (\S+)$', f.read(), re.MULTILINE))
    assert sorted(routes - documented) == [], 'routes missing from api-ref/source'
    assert sorted(documented - routes - NODE_OPERATIONS) == [], 'documented, not routed'

