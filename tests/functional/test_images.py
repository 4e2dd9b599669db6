"""The images API over HTTP: create, list, show, patch and delete, with bad input."""

import uuid

import pytest

PATCH = {'Content-Type': 'application/openstack-images-v2.1-json-patch'}


def _error(resp, code):
    assert resp.status_code == code, resp.text
    assert resp.headers['Content-Type'].startswith('application/json')
    error = resp.json()['error']
    assert error['code'] == code and error['title'] and error['message']
    return error['message']


def test_create_returns_queued_image_with_defaults(node):
    resp = node.request('POST', '/v2/images', json={
        'name': 'cirros', 'disk_format': 'qcow2', 'container_format': 'bare',
        'tags': ['b', 'a', 'a'], 'os_distro': 'cirros', 'min_ram': 64})
    assert resp.status_code == 201
    image = resp.json()
    assert resp.headers['Location'] == node.url + '/v2/images/%s' % image['id']
    assert uuid.UUID(image['id'])
    assert image['status'] == 'queued'
    assert image['visibility'] == 'shared'
    assert image['owner'] == 'admin'
    assert image['tags'] == ['a', 'b']
    assert image['os_distro'] == 'cirros'
    assert image['min_ram'] == 64 and image['min_disk'] == 0
    assert image['size'] is None and image['checksum'] is None
    assert image['self'] == '/v2/images/%s' % image['id']
    assert image['file'] == '/v2/images/%s/file' % image['id']
    assert image['created_at'].endswith('Z')
    assert node.request('GET', image['self']).json() == image


def test_create_with_chosen_id_then_duplicate_is_409(node):
    image_id = str(uuid.uuid4())
    assert node.create_image(id=image_id)['id'] == image_id
    resp = node.request('POST', '/v2/images', json={'id': image_id})
    _error(resp, 409)


@pytest.mark.parametrize('body, code', [
    ({'status': 'active'}, 403),
    ({'size': 5}, 403),
    ({'checksum': 'x'}, 403),
    ({'os_hash_value': 'x'}, 403),
    ({'locations': []}, 403),
    ({'self': '/x'}, 403),
    ({'visibility': 'everyone'}, 400),
    ({'disk_format': 'floppy'}, 400),
    ({'container_format': 'box'}, 400),
    ({'protected': 'yes'}, 400),
    ({'min_ram': -1}, 400),
    ({'min_disk': 1.5}, 400),
    ({'name': 'x' * 256}, 400),
    ({'tags': 'a'}, 400),
    ({'tags': [1]}, 400),
    ({'custom': 5}, 400),
    ({'id': 'not-a-uuid'}, 400),
    ([], 400),
])
def test_create_rejects_bad_attributes_and_creates_nothing(node, body, code):
    marker = 'bad-%s' % uuid.uuid4().hex
    if isinstance(body, dict):
        body = dict(body, name=body.get('name', marker))
    _error(node.request('POST', '/v2/images', json=body), code)
    listed = node.request('GET', '/v2/images?name=%s' % marker).json()['images']
    assert listed == []


def test_create_needs_json(node):
    _error(node.request('POST', '/v2/images', data='{"name": "x"}',
                        headers={'Content-Type': 'text/plain'}), 415)
    _error(node.request('POST', '/v2/images', data='{"name": ',
                        headers={'Content-Type': 'application/json'}), 400)


@pytest.mark.parametrize('image_id', ['nope', '12345', str(uuid.uuid4()),
                                      '..%2F..%2Fetc%2Fpasswd', '%00'])
def test_unknown_or_malformed_ids_are_404(node, image_id):
    for method in ('GET', 'DELETE'):
        _error(node.request(method, '/v2/images/%s' % image_id), 404)
    _error(node.request('PATCH', '/v2/images/%s' % image_id, data='[]', headers=PATCH), 404)


def test_list_filters(node):
    tag = uuid.uuid4().hex
    a = node.create_image(name='alpha-' + tag, tags=[tag, 'x'])
    b = node.create_image(name='beta-' + tag, tags=[tag], visibility='public')
    c = node.create_image(name='gamma-' + tag, tags=[tag, 'x'], os_hidden=True)

    def ids(query):
        resp = node.request('GET', '/v2/images?tag=%s&%s' % (tag, query))
        assert resp.status_code == 200, resp.text
        return [img['id'] for img in resp.json()['images']]

    assert ids('') == [b['id'], a['id']], 'newest first, hidden left out'
    assert ids('name=alpha-' + tag) == [a['id']]
    assert ids('tag=x') == [a['id']]
    assert ids('visibility=public') == [b['id']]
    assert ids('os_hidden=true') == [c['id']]
    assert ids('owner=admin&sort_key=name&sort_dir=asc') == [a['id'], b['id']]
    assert ids('status=active') == []
    assert ids('owner=someone-else') == []
    for bad in ('visibility=nope', 'status=nope', 'sort_key=password', 'sort_dir=up',
                'limit=x', 'limit=-1', 'marker=nope', 'marker=%s' % uuid.uuid4(),
                'os_hidden=maybe'):
        _error(node.request('GET', '/v2/images?tag=%s&%s' % (tag, bad)), 400)


@pytest.mark.parametrize('sort', ['', '&sort_key=name&sort_dir=asc',
                                  '&sort_key=size&sort_dir=desc'])
def test_list_pages_through_every_image_once(node, sort):
    tag = uuid.uuid4().hex
    created = {node.create_image(name='p%d' % (i % 3), tags=[tag])['id'] for i in range(7)}
    seen, path, pages = [], '/v2/images?tag=%s&limit=3%s' % (tag, sort), 0
    while path:
        body = node.request('GET', path).json()
        assert body['first'] == '/v2/images' and body['schema'] == '/v2/schemas/images'
        assert len(body['images']) <= 3
        seen.extend(img['id'] for img in body['images'])
        path = body.get('next')
        pages += 1
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created


def test_patch_add_replace_remove(node):
    image = node.create_image(name='before', kind='a')
    ops = [{'op': 'replace', 'path': '/name', 'value': 'after'},
           {'op': 'add', 'path': '/new_prop', 'value': 'v'},
           {'op': 'replace', 'path': '/kind', 'value': 'b'},
           {'op': 'add', 'path': '/tags', 'value': ['t2', 't1']},
           {'op': 'replace', 'path': '/min_disk', 'value': 3},
           {'op': 'replace', 'path': '/protected', 'value': True}]
    resp = node.request('PATCH', '/v2/images/%s' % image['id'], json=ops, headers=PATCH)
    assert resp.status_code == 200, resp.text
    patched = resp.json()
    assert patched['name'] == 'after' and patched['new_prop'] == 'v'
    assert patched['kind'] == 'b' and patched['tags'] == ['t1', 't2']
    assert patched['min_disk'] == 3 and patched['protected'] is True
    resp = node.request('PATCH', '/v2/images/%s' % image['id'], headers=PATCH,
                        json=[{'op': 'remove', 'path': '/kind'},
                              {'op': 'replace', 'path': '/protected', 'value': False}])
    assert resp.status_code == 200
    assert 'kind' not in resp.json()
    assert node.request('GET', '/v2/images/%s' % image['id']).json() == resp.json()


@pytest.mark.parametrize('ops, code', [
    ([{'op': 'replace', 'path': '/status', 'value': 'active'}], 403),
    ([{'op': 'replace', 'path': '/id', 'value': 'x'}], 403),
    ([{'op': 'replace', 'path': '/checksum', 'value': 'x'}], 403),
    ([{'op': 'remove', 'path': '/name'}], 403),
    ([{'op': 'remove', 'path': '/missing'}], 409),
    ([{'op': 'replace', 'path': '/missing', 'value': 'x'}], 409),
    ([{'op': 'replace', 'path': '/visibility', 'value': 'everyone'}], 400),
    ([{'op': 'replace', 'path': '/min_ram', 'value': 'lots'}], 400),
    ([{'op': 'add', 'path': '/prop', 'value': 1}], 400),
    ([{'op': 'move', 'path': '/name', 'from': '/x'}], 400),
    ([{'op': 'replace', 'path': '/name'}], 400),
    ([{'op': 'replace', 'path': 'name', 'value': 'x'}], 400),
    ([{'op': 'replace', 'path': '/a/b', 'value': 'x'}], 400),
    ({'op': 'replace'}, 400),
    (['nope'], 400),
])
def test_bad_patch_changes_nothing(node, ops, code):
    image = node.create_image(name='unchanged', kind='k')
    good = {'op': 'replace', 'path': '/name', 'value': 'changed'}
    body = [good, *ops] if isinstance(ops, list) else ops
    resp = node.request('PATCH', '/v2/images/%s' % image['id'], json=body, headers=PATCH)
    _error(resp, code)
    assert node.request('GET', '/v2/images/%s' % image['id']).json() == image


def test_patch_needs_json_patch_media_type(node):
    image = node.create_image()
    _error(node.request('PATCH', '/v2/images/%s' % image['id'],
                        json=[{'op': 'replace', 'path': '/name', 'value': 'x'}]), 415)
    _error(node.request('PATCH', '/v2/images/%s' % image['id'], data='[{',
                        headers=PATCH), 400)


def test_delete_removes_record_and_data(node):
    image = node.create_active_image(b'x' * 1000)
    stored = [f for f in _store_files(node) if f == image['id']]
    assert stored == [image['id']]
    assert node.request('DELETE', '/v2/images/%s' % image['id']).status_code == 204
    _error(node.request('GET', '/v2/images/%s' % image['id']), 404)
    assert image['id'] not in _store_files(node)
    _error(node.request('DELETE', '/v2/images/%s' % image['id']), 404)


def test_protected_image_refuses_delete(node):
    image = node.create_image(protected=True)
    message = _error(node.request('DELETE', '/v2/images/%s' % image['id']), 403)
    assert 'protected' in message
    assert node.request('GET', '/v2/images/%s' % image['id']).status_code == 200


def _store_files(node):
    import os
    return os.listdir(node.store_dir) if os.path.isdir(node.store_dir) else []
