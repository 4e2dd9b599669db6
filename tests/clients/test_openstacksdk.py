"""The real openstacksdk (image v2 proxy and cloud layer) against a running node.

The SDK authenticates with ``admin_token`` straight at the node, with no Keystone:
the token ``admin`` is an admin and any other token a member of the project it names.
"""

import hashlib
import os
import uuid

import openstack
import pytest
import urllib3.util.connection
from keystoneauth1 import exceptions as ks_exceptions
from openstack import exceptions

from tests import helpers

MIB = 1024 * 1024

# The SDK warns about its own upcoming removals on almost every call; they say nothing
# about the node.
pytestmark = [pytest.mark.filterwarnings('ignore::openstack.warnings.RemovedInSDK50Warning'),
              pytest.mark.filterwarnings('ignore::openstack.warnings.RemovedInSDK60Warning')]


def connect(url, token):
    return openstack.connect(auth_type='admin_token', auth={'endpoint': url, 'token': token},
                             image_endpoint_override=url, image_api_version='2')


@pytest.fixture(scope='module')
def conn(client_node):
    c = connect(client_node.url, 'admin')
    yield c
    c.close()


@pytest.fixture(scope='module')
def alice(client_node):
    c = connect(client_node.url, 'alice')
    yield c
    c.close()


def unique_name(prefix):
    return '%s-%s' % (prefix, uuid.uuid4().hex[:10])


def write_file(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def wait_active(conn, image_id):
    """The image once it is active: create_image(wait=True) may return it still queued."""
    def active():
        image = conn.image.get_image(image_id)
        return image if image.status == 'active' else None
    return helpers.wait_for(active, 'image %s to become active' % image_id)


def create_with_sdk(conn, tmp_path, data, **kwargs):
    name = unique_name('sdk')
    created = conn.create_image(name, filename=write_file(tmp_path / ('%s.raw' % name), data),
                                disk_format='raw', container_format='bare', wait=True,
                                **kwargs)
    assert created.name == name
    return wait_active(conn, created.id)


def server_image(node, image_id):
    resp = node.request('GET', '/v2/images/%s' % image_id)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_create_image_uploads_and_becomes_active(client_node, conn, tmp_path):
    data = os.urandom(3 * MIB + 4321)
    image = create_with_sdk(conn, tmp_path, data, validate_checksum=True)
    assert image.size == len(data)
    assert image.checksum == hashlib.md5(data).hexdigest()
    assert image.hash_algo == 'sha512'
    assert image.hash_value == hashlib.sha512(data).hexdigest()
    assert (image.disk_format, image.container_format) == ('raw', 'bare')
    on_server = server_image(client_node, image.id)
    assert on_server['status'] == 'active'
    assert on_server['size'] == len(data)
    # The SDK's own hashes travel as string properties.
    assert on_server['owner_specified.openstack.md5'] == hashlib.md5(data).hexdigest()
    assert on_server['owner_specified.openstack.sha256'] == hashlib.sha256(data).hexdigest()
    with open(os.path.join(client_node.store_dir, image.id), 'rb') as f:
        assert f.read() == data


def test_download_image_returns_the_bytes(conn, tmp_path):
    data = os.urandom(2 * MIB + 99)
    image = create_with_sdk(conn, tmp_path, data)
    resp = conn.image.download_image(image)
    assert resp.content == data
    out = tmp_path / 'out.raw'
    conn.image.download_image(image, output=str(out))
    with open(out, 'rb') as f:
        assert f.read() == data


def test_download_image_of_corrupted_data_raises(client_node, conn):
    data = os.urandom(MIB + 5)
    image = client_node.create_active_image(data)
    stored = os.path.join(client_node.store_dir, image['id'])
    with open(stored, 'r+b') as f:
        f.seek(12345)
        f.write(bytes([data[12345] ^ 0xFF]))
    # The node cuts the response short when the data does not match the record.
    with pytest.raises(ks_exceptions.ConnectionError, match='IncompleteRead'):
        conn.image.download_image(image['id'])


def test_images_lists_and_pages_with_a_small_limit(client_node, conn):
    tag = unique_name('sdk-paging')
    created = {client_node.create_image(tags=[tag])['id'] for _ in range(5)}
    assert created <= {image.id for image in conn.image.images()}

    sent = []
    hooks = conn.image.session.session.hooks['response']

    def hook(resp, *args, **kwargs):
        sent.append(resp.request.url)

    hooks.append(hook)
    try:
        paged = [image.id for image in conn.image.images(tag=tag, limit=2)]
    finally:
        hooks.remove(hook)
    assert sorted(paged) == sorted(created)
    # Pages of two: at least three requests were needed for five images.
    pages = [url for url in sent if '/v2/images?' in url]
    assert len(pages) >= 3, sent
    assert all('tag=%s' % tag in url and 'limit=2' in url for url in pages), sent


def test_update_image_name_and_property(client_node, conn, tmp_path):
    image = create_with_sdk(conn, tmp_path, b'update me')
    new_name = unique_name('sdk-renamed')
    updated = conn.image.update_image(image, name=new_name, flavour='vanilla')
    assert updated.name == new_name
    assert updated.properties['flavour'] == 'vanilla'
    on_server = server_image(client_node, image.id)
    assert (on_server['name'], on_server['flavour']) == (new_name, 'vanilla')
    again = conn.image.get_image(image.id)
    assert (again.name, again.properties['flavour']) == (new_name, 'vanilla')
    assert again.status == 'active'


def test_delete_image_then_get_image_raises(client_node, conn, tmp_path):
    image = create_with_sdk(conn, tmp_path, b'delete me')
    stored = os.path.join(client_node.store_dir, image.id)
    assert os.path.exists(stored)
    conn.image.delete_image(image, ignore_missing=False)
    with pytest.raises(exceptions.NotFoundException):
        conn.image.get_image(image.id)
    assert client_node.request('GET', '/v2/images/%s' % image.id).status_code == 404
    assert not os.path.exists(stored)
    assert conn.get_image(image.id) is None
    with pytest.raises(exceptions.NotFoundException):
        conn.image.delete_image(image.id, ignore_missing=False)
    conn.image.delete_image(image.id)  # ignore_missing=True by default


def test_many_calls_reuse_one_kept_alive_connection(client_node, tmp_path, monkeypatch):
    """Sequential calls of every kind ride one TCP connection; none is reset."""
    opened = []
    real_create_connection = urllib3.util.connection.create_connection

    def counting_create_connection(address, *args, **kwargs):
        opened.append(address)
        return real_create_connection(address, *args, **kwargs)

    # Every TCP connect urllib3 makes, including a silent reconnect after the server closed.
    monkeypatch.setattr(urllib3.util.connection, 'create_connection',
                        counting_create_connection)
    c = connect(client_node.url, 'admin')
    try:
        data = os.urandom(64 * 1024)
        image = create_with_sdk(c, tmp_path, data)
        missing = str(uuid.uuid4())
        for i in range(15):
            assert c.image.get_image(image.id).status == 'active'
            assert [img.id for img in c.image.images(name=image.name)] == [image.id]
            assert c.image.update_image(image, counter=str(i)).properties['counter'] == str(i)
            assert c.image.download_image(image).content == data
            with pytest.raises(exceptions.NotFoundException):
                c.image.get_image(missing)
            c.image.delete_image(missing)  # a 404, ignored
        second = create_with_sdk(c, tmp_path, data)
        c.image.delete_image(second, ignore_missing=False)
        assert c.image.get_image(image.id).properties['counter'] == '14'
        assert len(opened) == 1, opened
    finally:
        c.close()


def test_member_cannot_see_admins_private_image(client_node, conn, alice, tmp_path):
    data = os.urandom(4096)
    image = create_with_sdk(conn, tmp_path, data, visibility='private')
    assert (image.visibility, image.owner) == ('private', 'admin')

    with pytest.raises(exceptions.NotFoundException):
        alice.image.get_image(image.id)
    assert image.id not in {img.id for img in alice.image.images()}
    with pytest.raises(exceptions.NotFoundException):
        alice.image.download_image(image.id)
    with pytest.raises(exceptions.NotFoundException):
        alice.image.update_image(image.id, name='taken')
    with pytest.raises(exceptions.NotFoundException):
        alice.image.delete_image(image.id, ignore_missing=False)
    assert alice.get_image(image.id) is None

    on_server = server_image(client_node, image.id)
    assert (on_server['name'], on_server['status']) == (image.name, 'active')
