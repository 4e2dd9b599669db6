"""Image data over HTTP: upload (chunked or sized), download with Range, and failures."""

import hashlib
import os
import socket
import urllib.parse

import pytest

from tests import helpers


def _error(resp, code):
    assert resp.status_code == code, resp.text
    assert resp.json()['error']['code'] == code
    return resp.json()['error']['message']


def _status(node, image_id):
    return node.request('GET', '/v2/images/%s' % image_id).json()['status']


def _stored(node, image_id):
    return os.path.exists(os.path.join(node.store_dir, image_id))


def test_chunked_upload_hashes_and_download_matches(node):
    data = os.urandom(5 * 1024 * 1024 + 123)
    image = node.create_image()
    resp = node.upload(image['id'], helpers.chunks(data),
                       headers={'x-openstack-image-size': str(len(data))})
    assert resp.status_code == 204, resp.text
    image = node.request('GET', '/v2/images/%s' % image['id']).json()
    assert image['status'] == 'active'
    assert image['size'] == len(data)
    assert image['checksum'] == hashlib.md5(data).hexdigest()
    assert image['os_hash_algo'] == 'sha512'
    assert image['os_hash_value'] == hashlib.sha512(data).hexdigest()
    resp = node.request('GET', '/v2/images/%s/file' % image['id'])
    assert resp.status_code == 200
    assert resp.headers['Content-Type'] == 'application/octet-stream'
    assert resp.headers['Content-MD5'] == image['checksum']
    assert int(resp.headers['Content-Length']) == len(data)
    assert resp.content == data


def test_sized_upload_without_declared_size(node):
    data = os.urandom(100_000)
    image = node.create_active_image(data)
    assert image['size'] == len(data)
    assert node.request('GET', image['file']).content == data


def test_empty_upload_makes_empty_active_image(node):
    image = node.create_active_image(b'')
    assert image['status'] == 'active' and image['size'] == 0
    assert image['checksum'] == hashlib.md5(b'').hexdigest()


def test_queued_image_download_is_204(node):
    image = node.create_image()
    resp = node.request('GET', image['file'])
    assert resp.status_code == 204 and resp.content == b''


@pytest.mark.parametrize('declared, body', [(10, b'x' * 11), (12, b'x' * 11), (0, b'x')])
def test_declared_size_mismatch_is_400_and_image_stays_queued(node, declared, body):
    image = node.create_image()
    resp = node.upload(image['id'], helpers.chunks(body),
                       headers={'x-openstack-image-size': str(declared)})
    _error(resp, 400)
    assert _status(node, image['id']) == 'queued'
    assert not _stored(node, image['id'])
    assert node.upload(image['id'], b'y' * 5).status_code == 204
    assert node.request('GET', image['file']).content == b'y' * 5


@pytest.mark.parametrize('value', ['abc', '-1', '1.5'])
def test_bad_declared_size_is_400(node, value):
    image = node.create_image()
    _error(node.upload(image['id'], b'x', headers={'x-openstack-image-size': value}), 400)
    assert _status(node, image['id']) == 'queued'


def test_upload_to_active_image_is_409_and_keeps_data(node):
    image = node.create_active_image(b'first')
    message = _error(node.upload(image['id'], b'second'), 409)
    assert 'queued' in message
    assert node.request('GET', image['file']).content == b'first'


def test_upload_needs_octet_stream(node):
    image = node.create_image()
    _error(node.upload(image['id'], b'x', headers={'Content-Type': 'text/plain'}), 415)
    assert _status(node, image['id']) == 'queued'


def test_upload_to_unknown_image_is_404(node):
    _error(node.upload('00000000-0000-0000-0000-000000000000', b'x'), 404)
    _error(node.upload('nope', b'x'), 404)


@pytest.mark.parametrize('header, status, expected', [
    ('bytes=10-19', 206, (10, 19)),
    ('bytes=990-', 206, (990, 999)),
    ('bytes=-5', 206, (995, 999)),
    ('bytes=0-5000', 206, (0, 999)),
    ('bytes=0-0', 206, (0, 0)),
    ('bytes=abc', 200, (0, 999)),
    ('items=0-1', 200, (0, 999)),
])
def test_range_download(node, header, status, expected):
    data = os.urandom(1000)
    image = node.create_active_image(data)
    resp = node.request('GET', image['file'], headers={'Range': header})
    assert resp.status_code == status
    start, end = expected
    assert resp.content == data[start:end + 1]
    assert int(resp.headers['Content-Length']) == end - start + 1
    if status == 206:
        assert resp.headers['Content-Range'] == 'bytes %d-%d/1000' % (start, end)
        assert 'Content-MD5' not in resp.headers


@pytest.mark.parametrize('header', ['bytes=1000-', 'bytes=5000-6000', 'bytes=-0',
                                    'bytes=20-10'])
def test_unsatisfiable_range_is_416(node, header):
    image = node.create_active_image(b'x' * 1000)
    resp = node.request('GET', image['file'], headers={'Range': header})
    _error(resp, 416)
    assert resp.headers['Content-Range'] == 'bytes */1000'


def _raw_upload(node, image_id, head, body):
    """Send a request's head and part of its body; hang up once the upload runs."""
    url = urllib.parse.urlsplit(node.url)
    sock = socket.create_connection((url.hostname, url.port))
    request = ('PUT /v2/images/%s/file HTTP/1.1\r\nHost: %s\r\nX-Auth-Token: admin\r\n'
               'Content-Type: application/octet-stream\r\n%s\r\n'
               % (image_id, url.netloc, head))
    sock.sendall(request.encode() + body)
    helpers.wait_for(lambda: _status(node, image_id) == 'saving', 'the upload to start')
    sock.close()


@pytest.mark.parametrize('chunked', [False, True])
def test_client_hang_up_mid_upload_leaves_image_queued_without_data(node, chunked):
    image = node.create_image()
    if chunked:
        _raw_upload(node, image['id'], 'Transfer-Encoding: chunked\r\n',
                    b'100000\r\n' + b'x' * 5000)
    else:
        _raw_upload(node, image['id'], 'Content-Length: 1000000\r\n', b'x' * 5000)
    helpers.wait_for(lambda: _status(node, image['id']) == 'queued' and
                     not _stored(node, image['id']), 'the abandoned upload to be undone')
    assert node.upload(image['id'], b'complete').status_code == 204


def test_size_cap(sqlite_node_factory):
    node = sqlite_node_factory({'api': {'image_size_cap': '1000'}})
    image = node.create_image()
    _error(node.upload(image['id'], helpers.chunks(b'x' * 2000, 300)), 413)
    assert _status(node, image['id']) == 'queued'
    assert not _stored(node, image['id'])
    _error(node.upload(image['id'], b'x' * 1001), 413)
    _error(node.upload(image['id'], b'x', headers={'x-openstack-image-size': '1001'}), 413)
    assert node.upload(image['id'], b'x' * 1000).status_code == 204
