"""The real python-glanceclient CLI (``glance``) against a running node.

Every command runs in its own process in token mode (``--os-image-url`` plus
``--os-auth-token``), doing the full startup preamble (``GET /versions`` and the schemas)
as users do. Each test checks the exit status, what the CLI printed, and what the
node holds afterwards.
"""

import hashlib
import os
import re
import uuid

import pytest

MIB = 1024 * 1024
# Several 1 MiB pieces of a chunked upload plus a partial one.
UPLOAD_SIZE = 3 * MIB + 123457


def parse_properties(output):
    """The Property/Value table that image-show, -create and -update print, as a dict.

    A row with an empty Property cell continues the value above it (the CLI wraps long
    values such as os_hash_value at the table's width).
    """
    rows, last = {}, None
    for line in output.splitlines():
        if not line.startswith('|'):
            continue
        key, _, value = line.strip()[1:-1].partition('|')
        key, value = key.strip(), value.strip()
        if key == 'Property' and value == 'Value':
            continue
        if key:
            rows[key] = value
            last = key
        elif last is not None:
            rows[last] += value
    return rows


def parse_list(output):
    """The ID/Name table of image-list as a list of (id, name)."""
    rows = []
    for line in output.splitlines():
        if not line.startswith('|'):
            continue
        image_id, _, name = line.strip()[1:-1].partition('|')
        if image_id.strip() != 'ID':
            rows.append((image_id.strip(), name.strip()))
    return rows


def unique_name(prefix):
    return '%s-%s' % (prefix, uuid.uuid4().hex[:10])


def server_image(node, image_id, token='admin'):
    resp = node.request('GET', '/v2/images/%s' % image_id, token=token)
    assert resp.status_code == 200, resp.text
    return resp.json()


def assert_ok(result):
    assert result.returncode == 0, 'exit %d\nstdout:\n%s\nstderr:\n%s' % (
        result.returncode, result.stdout, result.stderr)


def assert_fails(result):
    assert result.returncode == 1, 'exit %d\nstdout:\n%s\nstderr:\n%s' % (
        result.returncode, result.stdout, result.stderr)


def write_file(path, data):
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def read_file(path):
    with open(path, 'rb') as f:
        return f.read()


@pytest.fixture(scope='module')
def uploaded(glance, tmp_path_factory):
    """An image created by ``glance image-create --file`` with a few MiB of random data."""
    data = os.urandom(UPLOAD_SIZE)
    path = write_file(tmp_path_factory.mktemp('upload') / 'image.raw', data)
    name = unique_name('cli-upload')
    result = glance('image-create', '--name', name, '--disk-format', 'raw',
                    '--container-format', 'bare', '--file', path)
    return data, name, result


def test_image_create_with_file_uploads_the_data(client_node, uploaded):
    data, name, result = uploaded
    assert_ok(result)
    shown = parse_properties(result.stdout)
    assert shown['name'] == name
    assert shown['status'] == 'active'
    assert shown['size'] == str(len(data))
    assert shown['disk_format'] == 'raw'
    assert shown['container_format'] == 'bare'
    assert shown['checksum'] == hashlib.md5(data).hexdigest()
    assert shown['os_hash_algo'] == 'sha512'
    assert shown['os_hash_value'] == hashlib.sha512(data).hexdigest()
    image = server_image(client_node, shown['id'])
    assert image['status'] == 'active'
    assert image['size'] == len(data)
    assert image['owner'] == 'admin'
    assert image['checksum'] == hashlib.md5(data).hexdigest()
    assert read_file(os.path.join(client_node.store_dir, shown['id'])) == data


def test_image_list_shows_the_image(glance, uploaded):
    data, name, result = uploaded
    image_id = parse_properties(result.stdout)['id']
    listed = glance('image-list')
    assert_ok(listed)
    assert (image_id, name) in parse_list(listed.stdout)


# urllib3 logs one line per request it sends; ``glance --debug`` shows it on stderr.
SENT_LIST_REQUEST = re.compile(r'"GET (/v2/images\?\S*) HTTP/1\.1" 200')


def test_image_list_follows_next_page_by_page(client_node, glance):
    tag = unique_name('paging')
    created = {client_node.create_image(tags=[tag])['id'] for _ in range(5)}
    result = glance('--debug', 'image-list', '--tag', tag, '--page-size', '2')
    assert_ok(result)
    listed = [image_id for image_id, _ in parse_list(result.stdout)]
    assert sorted(listed) == sorted(created)
    # Pages of two: the first request, then the two `next` links the node returned.
    sent = SENT_LIST_REQUEST.findall(result.stderr)
    assert len(sent) == 3, sent
    assert all('tag=%s' % tag in path and 'limit=2' in path for path in sent), sent
    assert ['marker=' in path for path in sent] == [False, True, True], sent


def test_image_show_matches_the_server(client_node, glance, uploaded):
    data, name, result = uploaded
    image_id = parse_properties(result.stdout)['id']
    shown = glance('image-show', image_id)
    assert_ok(shown)
    fields = parse_properties(shown.stdout)
    image = server_image(client_node, image_id)
    for key in ('id', 'name', 'status', 'visibility', 'owner', 'disk_format',
                'container_format', 'checksum', 'os_hash_algo', 'os_hash_value',
                'created_at', 'updated_at'):
        assert fields[key] == image[key], key
    assert fields['size'] == str(len(data))
    for hidden in ('self', 'file', 'schema'):
        assert hidden not in fields


def test_image_download_verifies_and_writes_the_data(glance, uploaded, tmp_path):
    data, name, result = uploaded
    image_id = parse_properties(result.stdout)['id']
    out = tmp_path / 'out.raw'
    downloaded = glance('image-download', '--file', str(out), image_id)
    assert_ok(downloaded)
    assert read_file(out) == data


def test_image_download_of_corrupted_data_fails(client_node, glance, tmp_path):
    data = os.urandom(MIB + 17)
    image = client_node.create_active_image(data)
    stored = os.path.join(client_node.store_dir, image['id'])
    corrupted = bytearray(read_file(stored))
    corrupted[MIB] ^= 0xFF
    write_file(stored, bytes(corrupted))
    result = glance('image-download', '--file', str(tmp_path / 'out.raw'), image['id'])
    assert_fails(result)
    # The node checks the data against the record as it streams and cuts the
    # response one chunk short on a mismatch, so the client fails on the read.
    assert 'IncompleteRead' in result.stderr


def test_image_update_name_and_properties(client_node, glance):
    image = client_node.create_active_image(b'update me')
    new_name = unique_name('renamed')
    result = glance('image-update', '--name', new_name, '--property', 'k=v',
                    '--property', 'keep=this', image['id'])
    assert_ok(result)
    fields = parse_properties(result.stdout)
    assert (fields['name'], fields['k'], fields['keep']) == (new_name, 'v', 'this')
    on_server = server_image(client_node, image['id'])
    assert (on_server['name'], on_server['k'], on_server['keep']) == (new_name, 'v', 'this')

    result = glance('image-update', '--remove-property', 'k', image['id'])
    assert_ok(result)
    assert 'k' not in parse_properties(result.stdout)
    on_server = server_image(client_node, image['id'])
    assert 'k' not in on_server
    assert on_server['keep'] == 'this'
    assert on_server['name'] == new_name
    assert on_server['status'] == 'active'


def test_image_delete_then_show_fails(client_node, glance):
    image = client_node.create_active_image(b'delete me')
    stored = os.path.join(client_node.store_dir, image['id'])
    assert os.path.exists(stored)
    assert_ok(glance('image-delete', image['id']))
    assert client_node.request('GET', '/v2/images/%s' % image['id']).status_code == 404
    assert not os.path.exists(stored)
    shown = glance('image-show', image['id'])
    assert_fails(shown)
    assert 'No image found with ID %s' % image['id'] in shown.stderr
    again = glance('image-delete', image['id'])
    assert_fails(again)
    assert image['id'] in again.stderr


def test_image_create_with_empty_stdin_uploads_zero_bytes(client_node, glance):
    name = unique_name('cli-empty')
    result = glance('image-create', '--name', name, '--disk-format', 'raw',
                    '--container-format', 'bare', stdin='devnull')
    assert_ok(result)
    fields = parse_properties(result.stdout)
    assert (fields['status'], fields['size']) == ('active', '0')
    image = server_image(client_node, fields['id'])
    assert image['size'] == 0
    assert image['checksum'] == hashlib.md5(b'').hexdigest()


def test_record_only_create_then_image_upload(client_node, glance, tmp_path):
    name = unique_name('cli-record')
    result = glance('image-create', '--name', name, '--disk-format', 'raw',
                    '--container-format', 'bare', stdin='closed')
    assert_ok(result)
    fields = parse_properties(result.stdout)
    assert fields['status'] == 'queued'
    image_id = fields['id']
    assert server_image(client_node, image_id)['size'] is None

    no_data = glance('image-download', '--file', str(tmp_path / 'none.raw'), image_id)
    assert_fails(no_data)
    assert 'has no data' in no_data.stderr

    data = os.urandom(2 * MIB + 1)
    uploaded = glance('image-upload', '--file', write_file(tmp_path / 'data.raw', data),
                      image_id)
    assert_ok(uploaded)
    image = server_image(client_node, image_id)
    assert (image['status'], image['size']) == ('active', len(data))
    assert image['os_hash_value'] == hashlib.sha512(data).hexdigest()
    assert_ok(glance('image-download', '--file', str(tmp_path / 'back.raw'), image_id))
    assert read_file(tmp_path / 'back.raw') == data


def test_member_cannot_see_admins_private_image(client_node, glance, tmp_path):
    data = os.urandom(4096)
    name = unique_name('cli-private')
    created = glance('image-create', '--name', name, '--visibility', 'private',
                     '--disk-format', 'raw', '--container-format', 'bare',
                     '--file', write_file(tmp_path / 'private.raw', data))
    assert_ok(created)
    fields = parse_properties(created.stdout)
    assert (fields['visibility'], fields['owner']) == ('private', 'admin')
    image_id = fields['id']

    shown = glance('image-show', image_id, token='alice')
    assert_fails(shown)
    assert 'No image found with ID %s' % image_id in shown.stderr
    assert image_id not in shown.stdout

    listed = glance('image-list', token='alice')
    assert_ok(listed)
    assert image_id not in [i for i, _ in parse_list(listed.stdout)]

    out = tmp_path / 'stolen.raw'
    downloaded = glance('image-download', '--file', str(out), image_id, token='alice')
    assert_fails(downloaded)
    assert not out.exists() or read_file(out) != data

    assert_fails(glance('image-update', '--name', 'taken', image_id, token='alice'))
    assert_fails(glance('image-delete', image_id, token='alice'))
    image = server_image(client_node, image_id)
    assert (image['name'], image['status']) == (name, 'active')
