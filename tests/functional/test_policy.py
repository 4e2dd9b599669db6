"""Policy over HTTP: who may do what to which image, on every database backend.

Callers are described by noauth's identity headers (X-Roles, X-Project-Id,
X-User-Id). Each test works in projects of its own (random ids), so the tests
share a node without depending on each other.
"""

import hashlib
import uuid

import pytest

from tests import helpers

PATCH_TYPE = 'application/openstack-images-v2.1-json-patch'
VISIBILITIES = ('public', 'community', 'shared', 'private')


def new_project():
    return 'proj-%s' % uuid.uuid4().hex


def assert_error(resp, code):
    """The response is ``code`` with the JSON error body glanceclient expects."""
    assert resp.status_code == code, (resp.status_code, resp.text)
    assert resp.headers['Content-Type'].startswith('application/json'), resp.headers
    body = resp.json()
    assert set(body) == {'error'}, body
    assert set(body['error']) == {'code', 'title', 'message'}, body
    assert body['error']['code'] == code
    assert body['error']['title'] == {403: 'Forbidden', 404: 'Not Found'}[code]
    assert isinstance(body['error']['message'], str) and body['error']['message']
    return body['error']


class Caller:
    """Requests to a node as one identity; roles are expanded by the server."""

    def __init__(self, node, project, *roles):
        self.node = node
        self.project = project
        self.headers = {'X-Project-Id': project, 'X-User-Id': 'user-%s' % project,
                        'X-Roles': ','.join(roles)}

    def request(self, method, path, headers=None, **kwargs):
        all_headers = dict(self.headers)
        all_headers.update(headers or {})
        return self.node.request(method, path, token=None, headers=all_headers, **kwargs)

    def create(self, **body):
        body.setdefault('name', 'img-%s' % uuid.uuid4().hex[:8])
        body.setdefault('disk_format', 'raw')
        body.setdefault('container_format', 'bare')
        return self.request('POST', '/v2/images', json=body)

    def show(self, image_id):
        return self.request('GET', '/v2/images/%s' % image_id)

    def patch(self, image_id, *ops):
        return self.request('PATCH', '/v2/images/%s' % image_id,
                            headers={'Content-Type': PATCH_TYPE}, json=list(ops))

    def rename(self, image_id, name='renamed'):
        return self.patch(image_id, {'op': 'replace', 'path': '/name', 'value': name})

    def upload(self, image_id, data=b'new data'):
        return self.request('PUT', '/v2/images/%s/file' % image_id, data=data,
                            headers={'Content-Type': 'application/octet-stream'})

    def download(self, image_id):
        return self.request('GET', '/v2/images/%s/file' % image_id)

    def delete(self, image_id):
        return self.request('DELETE', '/v2/images/%s' % image_id)

    def list_ids(self, **params):
        """Ids of every image the list shows (all pages)."""
        params.setdefault('limit', 1000)
        resp = self.request('GET', '/v2/images', params=params)
        assert resp.status_code == 200, resp.text
        ids = [img['id'] for img in resp.json()['images']]
        assert 'next' not in resp.json()
        return set(ids)


def admin(node):
    return Caller(node, 'admin-project-%s' % uuid.uuid4().hex[:8], 'admin')


@pytest.fixture
def project(node):
    """A project of this test with one active image of each visibility.

    Returns (project id, {visibility: image}, {visibility: data}).
    """
    project_id = new_project()
    boss = admin(node)
    images, data = {}, {}
    for visibility in VISIBILITIES:
        payload = ('%s data of %s' % (visibility, project_id)).encode() * 100
        resp = boss.create(owner=project_id, visibility=visibility)
        assert resp.status_code == 201, resp.text
        image = resp.json()
        assert boss.upload(image['id'], payload).status_code == 204
        images[visibility] = boss.show(image['id']).json()
        assert images[visibility]['status'] == 'active'
        data[visibility] = payload
    return project_id, images, data


def assert_unchanged(node, image):
    """The image is still there, as it was (as an admin sees it)."""
    now = admin(node).show(image['id'])
    assert now.status_code == 200, now.text
    now = now.json()
    for key in ('name', 'visibility', 'owner', 'status', 'checksum', 'size', 'protected'):
        assert now[key] == image[key], key


# -- members of the owning project ------------------------------------------------


def test_member_manages_own_image_through_its_life(node):
    member = Caller(node, new_project(), 'member')
    resp = member.create(visibility='private')
    assert resp.status_code == 201, resp.text
    image = resp.json()
    assert image['owner'] == member.project
    assert member.show(image['id']).status_code == 200
    resp = member.rename(image['id'], 'mine')
    assert resp.status_code == 200, resp.text
    assert resp.json()['name'] == 'mine'
    data = b'member data' * 1000
    assert member.upload(image['id'], data).status_code == 204
    shown = member.show(image['id']).json()
    assert shown['status'] == 'active'
    assert shown['checksum'] == hashlib.md5(data).hexdigest()
    resp = member.download(image['id'])
    assert resp.status_code == 200
    assert resp.content == data
    resp = member.patch(image['id'], {'op': 'replace', 'path': '/visibility',
                                      'value': 'community'})
    assert resp.status_code == 200, resp.text
    assert resp.json()['visibility'] == 'community'
    assert image['id'] in member.list_ids()
    assert member.delete(image['id']).status_code == 204
    assert_error(member.show(image['id']), 404)
    assert image['id'] not in admin(node).list_ids(owner=member.project)


def test_member_cannot_publicize(node):
    member = Caller(node, new_project(), 'member')
    image_id = str(uuid.uuid4())
    error = assert_error(member.create(id=image_id, visibility='public'), 403)
    assert 'publicize_image' in error['message']
    assert_error(admin(node).show(image_id), 404)  # nothing was created

    image = member.create().json()
    assert image['visibility'] == 'shared'
    assert_error(member.patch(image['id'], {'op': 'replace', 'path': '/visibility',
                                            'value': 'public'}), 403)
    assert_unchanged(node, image)


def test_member_may_make_own_image_community(node):
    member = Caller(node, new_project(), 'member')
    resp = member.create(visibility='community')
    assert resp.status_code == 201, resp.text
    assert resp.json()['visibility'] == 'community'


def test_member_cannot_create_or_give_images_for_another_project(node):
    member = Caller(node, new_project(), 'member')
    image_id = str(uuid.uuid4())
    error = assert_error(member.create(id=image_id, owner=new_project()), 403)
    assert 'add_image' in error['message']
    assert_error(admin(node).show(image_id), 404)

    image = member.create().json()
    assert_error(member.patch(image['id'], {'op': 'replace', 'path': '/owner',
                                            'value': new_project()}), 403)
    assert_unchanged(node, image)


def test_member_lists_own_and_public_images_only(node, project):
    project_id, images, _ = project
    owner = Caller(node, project_id, 'member')
    assert owner.list_ids(owner=project_id) == {img['id'] for img in images.values()}
    other = Caller(node, new_project(), 'member')
    assert other.list_ids(owner=project_id) == {images['public']['id']}
    assert other.list_ids(owner=project_id, visibility='community') == \
        {images['community']['id']}
    assert other.list_ids(owner=project_id, visibility='all') == \
        {images['public']['id'], images['community']['id']}
    for hidden in ('private', 'shared'):
        assert other.list_ids(owner=project_id, visibility=hidden) == set()
        assert owner.list_ids(owner=project_id, visibility=hidden) == \
            {images[hidden]['id']}


# -- readers of the owning project --------------------------------------------------


def test_reader_reads_but_cannot_change(node, project):
    project_id, images, data = project
    reader = Caller(node, project_id, 'reader')
    assert reader.list_ids(owner=project_id) == {img['id'] for img in images.values()}
    for visibility, image in images.items():
        resp = reader.show(image['id'])
        assert resp.status_code == 200, resp.text
        assert resp.json()['visibility'] == visibility
        assert_error(reader.rename(image['id']), 403)
        assert_error(reader.delete(image['id']), 403)
        assert_unchanged(node, image)
    # Data of the project's own private image needs the member role (as in Glance);
    # public and community data is for everyone.
    for visibility in ('private', 'shared'):
        assert_error(reader.download(images[visibility]['id']), 403)
    for visibility in ('public', 'community'):
        resp = reader.download(images[visibility]['id'])
        assert resp.status_code == 200
        assert resp.content == data[visibility]


def test_reader_cannot_create_or_upload(node):
    project_id = new_project()
    reader = Caller(node, project_id, 'reader')
    error = assert_error(reader.create(), 403)
    assert 'add_image' in error['message']
    queued = admin(node).create(owner=project_id).json()
    assert reader.show(queued['id']).status_code == 200
    assert_error(reader.upload(queued['id']), 403)
    assert_unchanged(node, queued)
    assert admin(node).show(queued['id']).json()['status'] == 'queued'


def test_caller_without_reader_role_cannot_list(node, project):
    project_id, images, _ = project
    nobody = Caller(node, project_id, 'observer')
    error = assert_error(nobody.request('GET', '/v2/images'), 403)
    assert 'get_images' in error['message']
    # Showing a private image needs a role in its project, a public one none.
    assert_error(nobody.show(images['private']['id']), 404)
    assert nobody.show(images['public']['id']).status_code == 200


# -- other projects ------------------------------------------------------------------


@pytest.mark.parametrize('roles', [('member',), ('reader',)])
def test_invisible_images_are_404_for_other_projects(node, project, roles):
    project_id, images, _ = project
    stranger = Caller(node, new_project(), *roles)
    for visibility in ('private', 'shared'):
        image = images[visibility]
        unknown = str(uuid.uuid4())
        for action in ('show', 'rename', 'delete', 'upload', 'download'):
            error = assert_error(getattr(stranger, action)(image['id']), 404)
            # Exactly what an id that does not exist gets: no hint the image exists.
            missing = assert_error(getattr(stranger, action)(unknown), 404)
            assert error['message'] == missing['message'].replace(unknown, image['id'])
        assert_unchanged(node, image)
        assert Caller(node, project_id, 'member').show(image['id']).status_code == 200


def test_property_named_project_id_grants_nothing(node):
    owner = Caller(node, new_project(), 'member')
    stranger = Caller(node, new_project(), 'member')
    resp = owner.create(project_id=stranger.project, owner=stranger.project)
    assert_error(resp, 403)
    resp = owner.create(project_id=stranger.project)
    assert resp.status_code == 201, resp.text
    image = resp.json()
    assert image['owner'] == owner.project
    assert image['project_id'] == stranger.project
    for action in ('show', 'rename', 'delete', 'download'):
        assert_error(getattr(stranger, action)(image['id']), 404)
    assert owner.rename(image['id']).status_code == 200


@pytest.mark.parametrize('visibility', ['public', 'community'])
def test_public_images_are_readable_not_changeable_by_other_projects(node, project,
                                                                      visibility):
    project_id, images, data = project
    image = images[visibility]
    stranger = Caller(node, new_project(), 'member')
    resp = stranger.show(image['id'])
    assert resp.status_code == 200
    assert resp.json()['owner'] == project_id
    resp = stranger.download(image['id'])
    assert resp.status_code == 200
    assert resp.content == data[visibility]
    assert resp.headers['Content-MD5'] == hashlib.md5(data[visibility]).hexdigest()
    for action, rule in (('rename', 'modify_image'), ('delete', 'delete_image')):
        error = assert_error(getattr(stranger, action)(image['id']), 403)
        assert rule in error['message']
    assert_unchanged(node, image)


def test_other_project_cannot_upload_to_a_public_queued_image(node):
    project_id = new_project()
    queued = admin(node).create(owner=project_id, visibility='public').json()
    stranger = Caller(node, new_project(), 'member')
    assert stranger.show(queued['id']).status_code == 200
    error = assert_error(stranger.upload(queued['id']), 403)
    assert 'upload_image' in error['message']
    assert_unchanged(node, queued)
    assert admin(node).show(queued['id']).json()['status'] == 'queued'


# -- admins ----------------------------------------------------------------------------


def test_admin_does_everything_on_any_project_image(node, project):
    project_id, images, data = project
    boss = admin(node)
    assert boss.list_ids(owner=project_id) == {img['id'] for img in images.values()}
    private = images['private']
    resp = boss.download(private['id'])
    assert resp.status_code == 200
    assert resp.content == data['private']
    resp = boss.patch(private['id'], {'op': 'replace', 'path': '/visibility',
                                      'value': 'public'})
    assert resp.status_code == 200, resp.text
    assert resp.json()['visibility'] == 'public'
    new_owner = new_project()
    resp = boss.patch(private['id'], {'op': 'replace', 'path': '/owner', 'value': new_owner})
    assert resp.status_code == 200, resp.text
    assert resp.json()['owner'] == new_owner
    assert boss.delete(private['id']).status_code == 204
    assert_error(boss.show(private['id']), 404)
    created = boss.create(owner=project_id, visibility='public')
    assert created.status_code == 201, created.text
    queued = created.json()
    assert boss.upload(queued['id'], b'admin data').status_code == 204
    assert Caller(node, new_project(), 'member').download(queued['id']).content == \
        b'admin data'


def test_token_admin_without_roles_header_is_admin(node, project):
    project_id, images, _ = project
    resp = node.request('GET', '/v2/images/%s' % images['private']['id'], token='admin')
    assert resp.status_code == 200
    resp = node.request('GET', '/v2/images/%s' % images['private']['id'],
                        token=new_project())
    assert_error(resp, 404)
    # Any other token is a member of the project it names.
    resp = node.request('PATCH', '/v2/images/%s' % images['private']['id'], token=project_id,
                        headers={'Content-Type': PATCH_TYPE},
                        json=[{'op': 'replace', 'path': '/name', 'value': 'by-token'}])
    assert resp.status_code == 200, resp.text


# -- an operator's policy file -----------------------------------------------------------


def test_policy_file_overrides_rules(tmp_path, sqlite_node_factory):
    path = helpers.policy_file(str(tmp_path / 'policy.yaml'), {
        'delete_image': 'role:admin',
        'get_images': 'role:admin',
        'publicize_image': 'rule:admin_required or rule:project_member',
        'download_image': "rule:admin_required or "
                          "(rule:project_member and 'yes':%(allow_download)s)",
    })
    node = sqlite_node_factory(options={'oslo_policy': {'policy_file': path}})
    member = Caller(node, new_project(), 'member')
    boss = admin(node)

    # Loosened: members may now publish their images.
    resp = member.create(visibility='public', allow_download='yes')
    assert resp.status_code == 201, resp.text
    image = resp.json()
    assert image['visibility'] == 'public'
    assert member.upload(image['id'], b'policy data').status_code == 204

    # Tightened: only admins list and delete.
    error = assert_error(member.request('GET', '/v2/images'), 403)
    assert 'get_images' in error['message']
    assert image['id'] in boss.list_ids()
    error = assert_error(member.delete(image['id']), 403)
    assert 'delete_image' in error['message']
    assert member.show(image['id']).status_code == 200

    # A rule on an image property (properties are flattened into the target).
    assert member.download(image['id']).content == b'policy data'
    resp = member.patch(image['id'], {'op': 'replace', 'path': '/allow_download',
                                      'value': 'no'})
    assert resp.status_code == 200, resp.text
    assert_error(member.download(image['id']), 403)

    # Rules the file does not name keep their defaults.
    assert_error(Caller(node, member.project, 'reader').rename(image['id']), 403)
    assert_error(Caller(node, new_project(), 'member').rename(image['id']), 403)

    assert boss.delete(image['id']).status_code == 204
    assert_error(boss.show(image['id']), 404)
