"""Downloads through the node-local cache, over HTTP against real nodes."""

import concurrent.futures
import hashlib
import os
import socket
import sqlite3
import urllib.parse

import pytest
import requests

from tests import helpers


@pytest.fixture(scope='module', params=['sqlite', 'xattr'])
def cache_node(request, tmp_path_factory):
    """A node per cache driver, shared by this module's tests (each uses its own images)."""
    workdir = tmp_path_factory.mktemp('cache-%s' % request.param)
    node = helpers.Node(workdir, 'sqlite:///%s' % (workdir / 'glance-cache.db'),
                        {'cache': {'driver': request.param}})
    node.cache_dir = os.path.join(node.workdir, 'data', 'cache')
    node.start()
    yield node
    node.stop()


def _cached_ids(node):
    return sorted(n for n in os.listdir(node.cache_dir) if len(n) == 36)


def _hits(node, image_id):
    if os.path.exists(os.path.join(node.cache_dir, 'cache.db')):
        row = sqlite3.connect(os.path.join(node.cache_dir, 'cache.db')).execute(
            'SELECT hits FROM cached_images WHERE image_id = ?', (image_id,)).fetchone()
        return row[0] if row else None
    return int(os.getxattr(os.path.join(node.cache_dir, image_id), 'user.glance_cache.hits'))


def _wait_cached(node, image_id):
    helpers.wait_for(lambda: image_id in _cached_ids(node), 'image %s to be cached' % image_id)


def test_first_download_fills_cache_then_cache_serves(cache_node):
    data = os.urandom(3 * 1024 * 1024 + 7)
    image = cache_node.create_active_image(data)
    counter = helpers.OpenCounter(cache_node.store_dir)
    try:
        assert cache_node.request('GET', image['file']).content == data
        _wait_cached(cache_node, image['id'])
        for _ in range(3):
            resp = cache_node.request('GET', image['file'])
            assert resp.content == data
            assert resp.headers['Content-MD5'] == hashlib.md5(data).hexdigest()
        resp = cache_node.request('GET', image['file'], headers={'Range': 'bytes=100-199'})
        assert resp.status_code == 206 and resp.content == data[100:200]
        assert counter.poll().get(image['id']) == 1, 'the store was read once'
    finally:
        counter.close()
    assert _hits(cache_node, image['id']) == 4
    with open(os.path.join(cache_node.cache_dir, image['id']), 'rb') as f:
        assert f.read() == data


def test_concurrent_downloads_of_uncached_image_read_store_once(cache_node):
    data = os.urandom(16 * 1024 * 1024)
    image = cache_node.create_active_image(data)
    counter = helpers.OpenCounter(cache_node.store_dir)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            bodies = list(pool.map(
                lambda _: requests.get(cache_node.url + image['file'],
                                       headers={'X-Auth-Token': 'admin'}, timeout=60).content,
                range(4)))
        assert all(body == data for body in bodies)
        assert counter.poll().get(image['id']) == 1
    finally:
        counter.close()


def test_corrupt_store_data_is_never_cached_nor_served_whole(cache_node):
    data = os.urandom(2 * 1024 * 1024)
    image = cache_node.create_active_image(data)
    with open(os.path.join(cache_node.store_dir, image['id']), 'r+b') as f:
        f.seek(12345)
        f.write(b'\0' * 10)
    invalid_dir = os.path.join(cache_node.cache_dir, 'invalid')
    for _ in range(2):
        # The response ends short of its Content-Length: the client sees an error.
        with pytest.raises(requests.RequestException):
            resp = requests.get(cache_node.url + image['file'],
                                headers={'X-Auth-Token': 'admin'}, timeout=60)
            assert resp.content != data
        helpers.wait_for(lambda: image['id'] in os.listdir(invalid_dir),
                         'the bad data to be quarantined')
        assert image['id'] not in _cached_ids(cache_node)


def test_hang_up_mid_download_never_commits_partial_data(cache_node):
    data = os.urandom(32 * 1024 * 1024)
    image = cache_node.create_active_image(data)
    url = urllib.parse.urlsplit(cache_node.url)
    sock = socket.create_connection((url.hostname, url.port))
    sock.sendall(('GET %s HTTP/1.1\r\nHost: %s\r\nX-Auth-Token: admin\r\n\r\n'
                  % (image['file'], url.netloc)).encode())
    sock.recv(65536)
    sock.close()
    # The fill goes on without the client; whatever is committed is whole.
    _wait_cached(cache_node, image['id'])
    with open(os.path.join(cache_node.cache_dir, image['id']), 'rb') as f:
        assert hashlib.sha512(f.read()).hexdigest() == image['os_hash_value']
    assert cache_node.request('GET', image['file']).content == data


def test_deleting_image_removes_it_from_cache(cache_node):
    image = cache_node.create_active_image(b'd' * 5000)
    cache_node.request('GET', image['file'])
    _wait_cached(cache_node, image['id'])
    assert cache_node.request('DELETE', '/v2/images/%s' % image['id']).status_code == 204
    assert image['id'] not in _cached_ids(cache_node)


def test_cache_stays_under_max_size(sqlite_node_factory):
    node = sqlite_node_factory({'cache': {'max_size': str(3 * 100_000),
                                          'low_watermark': '0.5'}})
    cache_dir = os.path.join(node.workdir, 'data', 'cache')
    images = [node.create_active_image(os.urandom(100_000)) for _ in range(8)]
    for image in images:
        assert len(node.request('GET', image['file']).content) == 100_000
        helpers.wait_for(lambda i=image['id']: i in os.listdir(cache_dir), 'the fill')
        total = sum(os.path.getsize(os.path.join(cache_dir, n))
                    for n in os.listdir(cache_dir) if len(n) == 36)
        assert total <= 3 * 100_000
    big = node.create_active_image(os.urandom(400_000))
    assert len(node.request('GET', big['file']).content) == 400_000
    assert big['id'] not in os.listdir(cache_dir), 'larger than the cache: served, not cached'


def test_cache_disabled_serves_from_store(sqlite_node_factory):
    node = sqlite_node_factory({'cache': {'enabled': 'false'}})
    image = node.create_active_image(b'plain')
    assert node.request('GET', image['file']).content == b'plain'
    assert not os.path.exists(os.path.join(node.workdir, 'data', 'cache'))


TRAVERSALS = ['../../etc/passwd', '..%2F..%2Fetc%2Fpasswd', '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
              '%2Fetc%2Fpasswd', 'abc%00def', '..', '%2e%2e', '..%5c..%5cetc']


def test_traversal_ids_are_404_and_touch_nothing(cache_node):
    watched = (cache_node.cache_dir, cache_node.store_dir, os.path.dirname(cache_node.workdir))
    before = {p: os.stat(p).st_mtime_ns for p in watched}
    for bad in TRAVERSALS:
        for method, path in (('GET', '/v2/images/%s/file' % bad), ('GET', '/v2/images/%s' % bad),
                             ('PUT', '/v2/images/%s/file' % bad),
                             ('DELETE', '/v2/images/%s' % bad)):
            resp = cache_node.request(method, path, headers={
                'Content-Type': 'application/octet-stream'}, data=b'x')
            assert resp.status_code == 404, (method, path, resp.text)
            assert resp.json()['error']['code'] == 404
    assert {p: os.stat(p).st_mtime_ns for p in watched} == before
