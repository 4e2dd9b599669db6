"""Many clients at once: create, upload, download and delete images in parallel.

Eight client threads, each with its own requests.Session (so its own
keep-alive connection), run the whole life of an image over and over against
one node, on SQLite and on PostgreSQL. No request may fail with a 5xx or a
reset connection, every image must go active and then be gone, and each
session must keep using the connection it opened.
"""

import hashlib
import os
import random
import threading
import uuid
from concurrent import futures

import pytest
import requests
import urllib3.connection

from tests import helpers

THREADS = 8
# Bounded so that each backend takes about 10 s on two cores.
ITERATIONS = int(os.environ.get('GLANCE_CACHE_TEST_CONCURRENCY_ITERATIONS', '25'))
MIN_SIZE = 200 * 1024
MAX_SIZE = 480 * 1024
PATCH_TYPE = 'application/openstack-images-v2.1-json-patch'


@pytest.fixture(params=['sqlite', 'postgresql'])
def busy_node(request, tmp_path, throwaway_db_factory):
    if request.param == 'sqlite':
        yield request.getfixturevalue('sqlite_node_factory')()
        return
    node = helpers.Node(tmp_path / 'node', throwaway_db_factory(request.param))
    node.start()
    yield node
    node.stop()


@pytest.fixture
def connects(monkeypatch):
    """Local ports of the TCP connections opened, per client thread.

    urllib3 silently reconnects when it finds a pooled connection closed by
    the server, so counting connect() calls is what shows keep-alive at work.
    """
    opened = {}
    original = urllib3.connection.HTTPConnection.connect

    def connect(self):
        original(self)
        opened.setdefault(threading.get_ident(), []).append(self.sock.getsockname()[1])

    monkeypatch.setattr(urllib3.connection.HTTPConnection, 'connect', connect)
    return opened


class Client:
    """One client thread's identity, session and record of what it saw."""

    def __init__(self, node, project, number):
        self.node = node
        self.number = number
        self.session = requests.Session()
        self.headers = {'X-Project-Id': project, 'X-User-Id': 'user-%d' % number,
                        'X-Roles': 'member'}
        self.statuses = []
        self.created = []
        self.went_active = set()
        self.gone = set()
        self.thread = None

    def request(self, method, path, expect, headers=None, **kwargs):
        all_headers = dict(self.headers)
        all_headers.update(headers or {})
        resp = self.session.request(method, self.node.url + path, headers=all_headers,
                                    timeout=60, **kwargs)
        self.statuses.append((method, path, resp.status_code))
        assert resp.status_code == expect, (method, path, resp.status_code, resp.text)
        return resp

    def run(self, start, iterations):
        rng = random.Random(self.number)
        self.thread = threading.get_ident()
        start.wait(timeout=60)
        for i in range(iterations):
            self.one_image(rng, i)

    def one_image(self, rng, i):
        data = rng.randbytes(rng.randint(MIN_SIZE, MAX_SIZE))
        image = self.request('POST', '/v2/images', 201, json={
            'name': 'busy-%d-%d' % (self.number, i), 'disk_format': 'raw',
            'container_format': 'bare'}).json()
        image_id = image['id']
        self.created.append(image_id)
        assert image['status'] == 'queued'

        headers = {'Content-Type': 'application/octet-stream'}
        if (i + self.number) % 2:
            # Chunked, as glanceclient sends it; sometimes with the declared size.
            body = helpers.chunks(data, rng.choice((8192, 65536, 100000)))
            if i % 3 == 0:
                headers['x-openstack-image-size'] = str(len(data))
        else:
            body = data
        self.request('PUT', '/v2/images/%s/file' % image_id, 204, headers=headers, data=body)

        shown = self.request('GET', '/v2/images/%s' % image_id, 200).json()
        assert shown['status'] == 'active', shown
        assert shown['size'] == len(data)
        assert shown['checksum'] == hashlib.md5(data).hexdigest()
        assert shown['os_hash_algo'] == 'sha512'
        assert shown['os_hash_value'] == hashlib.sha512(data).hexdigest()
        self.went_active.add(image_id)

        if i % 4 == 1:
            self.request('PATCH', '/v2/images/%s' % image_id, 200,
                         headers={'Content-Type': PATCH_TYPE},
                         json=[{'op': 'add', 'path': '/round', 'value': str(i)}])

        resp = self.request('GET', '/v2/images/%s/file' % image_id, 200)
        assert resp.headers['Content-MD5'] == shown['checksum']
        assert resp.content == data

        self.request('DELETE', '/v2/images/%s' % image_id, 204)
        self.request('GET', '/v2/images/%s' % image_id, 404)
        self.gone.add(image_id)


def test_parallel_image_lifecycles(busy_node, connects):
    node = busy_node
    project = 'busy-%s' % uuid.uuid4().hex
    clients = [Client(node, project, n) for n in range(THREADS)]
    start = threading.Barrier(THREADS)
    with futures.ThreadPoolExecutor(THREADS) as pool:
        jobs = [pool.submit(c.run, start, ITERATIONS) for c in clients]
        # Bounded, so that a hung request fails the test instead of hanging it.
        done, _ = futures.wait(jobs, timeout=240)
    errors = []
    for client, job in zip(clients, jobs, strict=True):
        assert job in done, 'client %d did not finish' % client.number
        exc = job.exception()
        if exc is not None:
            errors.append('client %d: %r' % (client.number, exc))
    assert not errors, '\n'.join(errors)

    statuses = [s for c in clients for s in c.statuses]
    assert len(statuses) == THREADS * ITERATIONS * 6 + sum(
        1 for i in range(ITERATIONS) if i % 4 == 1) * THREADS
    assert [s for s in statuses if s[2] >= 500] == []

    created = [i for c in clients for i in c.created]
    assert len(created) == len(set(created)) == THREADS * ITERATIONS
    for client in clients:
        assert client.went_active == client.gone == set(client.created)

    # Keep-alive: every session did all its requests over the one connection it opened.
    assert len({c.thread for c in clients}) == THREADS
    for client in clients:
        assert len(connects[client.thread]) == 1, \
            'client %d opened connections from ports %s' % (client.number,
                                                         connects[client.thread])
        client.session.close()

    # Afterwards nothing of the project is left, and nothing is stuck in saving.
    member = {'X-Project-Id': project, 'X-Roles': 'member'}
    for params in ({'owner': project}, {'owner': project, 'status': 'saving'},
                   {'owner': project, 'visibility': 'all', 'os_hidden': 'true'}):
        resp = node.request('GET', '/v2/images', params=dict(params, limit=1000))
        assert resp.status_code == 200
        assert resp.json()['images'] == [], params
    resp = node.request('GET', '/v2/images', token=None, headers=member,
                        params={'limit': 1000})
    assert [img for img in resp.json()['images'] if img['owner'] == project] == []
    for image_id in created:
        assert node.request('GET', '/v2/images/%s' % image_id).status_code == 404
    assert os.listdir(node.store_dir) == [], 'no image data may be left in the store'
    assert 'Traceback' not in node.log()
