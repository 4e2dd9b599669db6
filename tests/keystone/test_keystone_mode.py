"""Keystone mode end to end: real Keystone tokens through keystonemiddleware's auth_token."""

import os
import subprocess
import sys
import uuid

import pytest

from tests import helpers
from tests.keystone import env

# The first run on a fresh clone also installs Keystone and tempest into their venvs.
pytestmark = pytest.mark.timeout(1500)

GLANCE_COMMAND = os.path.join(os.path.dirname(sys.executable), 'glance')
DATA = os.urandom(4096)


@pytest.fixture(scope='module')
def tokens(keystone_stack):
    ks = keystone_stack.keystone
    return {'admin': ks.token(), 'member': ks.user_token('demo'),
            'reader': ks.user_token('demo-reader'), 'other': ks.user_token('other')}


@pytest.fixture(scope='module')
def node(keystone_stack):
    return keystone_stack.node_a


@pytest.fixture(scope='module')
def member_image(node, tokens):
    """An active private image of the demo project, created by its member."""
    return node.create_active_image(DATA, token=tokens['member'], visibility='private')


def test_versions_need_no_token(node):
    for path in ('/versions', '/'):
        resp = node.request('GET', path, token=None)
        assert resp.status_code in (200, 300), resp.text
        assert 'v2.14' in [v['id'] for v in resp.json()['versions']]


@pytest.mark.parametrize('token', [None, 'not-a-keystone-token'])
def test_missing_or_bad_token_is_401(node, token):
    resp = node.request('GET', '/v2/images', token=token)
    assert resp.status_code == 401, resp.text
    assert resp.headers['Content-Type'].startswith('application/json')
    assert resp.json()['error']['code'] == 401
    assert resp.headers['WWW-Authenticate'].startswith('Keystone uri=')


def test_admin_queues_and_lists(node, tokens, member_image):
    image_id = member_image['id']
    resp = node.request('PUT', '/v2/cache/%s' % image_id, token=tokens['admin'])
    assert resp.status_code == 202, resp.text

    def cached():
        body = node.request('GET', '/v2/cache', token=tokens['admin']).json()
        return image_id in [e['image_id'] for e in body['cached_images']]

    helpers.wait_for(cached, 'the image to be cached')
    resp = node.request('GET', '/v2/cache/jobs/%s' % image_id, token=tokens['admin'])
    assert resp.status_code == 200 and resp.json()['state'] == 'cached', resp.text
    resp = node.request('DELETE', '/v2/cache/%s' % image_id, token=tokens['admin'])
    assert resp.status_code == 204, resp.text


@pytest.mark.parametrize('who', ['member', 'reader', 'other'])
def test_non_admins_may_not_touch_the_cache(node, tokens, member_image, who):
    token = tokens[who]
    image_id = member_image['id']
    for method, path in (('GET', '/v2/cache'), ('GET', '/v2/cache/jobs'),
                         ('PUT', '/v2/cache/%s' % image_id),
                         ('DELETE', '/v2/cache/%s' % image_id), ('DELETE', '/v2/cache'),
                         ('POST', '/v2/cache/prune')):
        resp = node.request(method, path, token=token)
        expected = (403, 404) if (who == 'other' and method == 'PUT') else (403,)
        assert resp.status_code in expected, (method, path, resp.status_code, resp.text)
        assert resp.json()['error']['code'] == resp.status_code


def test_tokens_are_passed_on_to_target_nodes(keystone_stack, tokens):
    """node-a passes a request on to node-b with the caller's own Keystone token."""
    node_a, node_b = keystone_stack.node_a, keystone_stack.node_b
    image = node_a.create_active_image(DATA, token=tokens['admin'], visibility='public')
    path = '/v2/cache/%s' % image['id']

    # Passing requests on is admin-only by default: a member learns nothing of
    # the cluster, not even whether a node name exists.
    for nodes in ('node-b', 'no-such-node'):
        resp = node_a.request('PUT', path + '?nodes=' + nodes, token=tokens['member'])
        assert resp.status_code == 403, resp.text
        assert 'cache_forward' in resp.json()['error']['message']

    resp = node_a.request('PUT', path + '?nodes=node-b', token=tokens['admin'])
    assert resp.status_code == 202, resp.text

    def holders():
        return node_a.request('GET', '/v2/cache/nodes/%s' % image['id'],
                              token=tokens['admin']).json()

    helpers.wait_for(lambda: holders() == [node_b.url], 'node-b alone to hold the image')
    assert node_b.request('DELETE', path, token=tokens['admin']).status_code == 204


def test_reader_reads_but_does_not_write(node, tokens, member_image):
    image_id = member_image['id']
    resp = node.request('GET', '/v2/images/%s' % image_id, token=tokens['reader'])
    assert resp.status_code == 200, resp.text
    resp = node.request('POST', '/v2/images', token=tokens['reader'],
                        json={'name': 'nope', 'disk_format': 'raw', 'container_format': 'bare'})
    assert resp.status_code == 403, resp.text
    resp = node.upload(image_id, b'x' * 10, token=tokens['reader'])
    assert resp.status_code == 403, resp.text
    resp = node.request('DELETE', '/v2/images/%s' % image_id, token=tokens['reader'])
    assert resp.status_code == 403, resp.text
    assert node.request('GET', '/v2/images/%s' % image_id,
                        token=tokens['member']).json()['status'] == 'active'


def test_other_project_does_not_see_private_image(node, tokens, member_image):
    resp = node.request('GET', '/v2/images/%s' % member_image['id'], token=tokens['other'])
    assert resp.status_code == 404, resp.text


def test_token_roles_reach_the_context(node, tokens):
    """The image's owner is the project of the validated token, not anything the client says."""
    image = node.create_image(token=tokens['member'],
                              name='owner-%s' % uuid.uuid4().hex[:6])
    assert image['owner'] != 'demo' and len(image['owner']) == 32
    resp = node.request('POST', '/v2/images', token=tokens['member'],
                        headers={'X-Roles': 'admin', 'X-Project-Id': 'spoofed'},
                        json={'name': 'spoof', 'disk_format': 'raw',
                              'container_format': 'bare'})
    assert resp.status_code == 201, resp.text
    assert resp.json()['owner'] == image['owner']
    resp = node.request('GET', '/v2/cache', token=tokens['member'],
                        headers={'X-Roles': 'admin'})
    assert resp.status_code == 403, resp.text


def _glance(keystone, node, home, *args, user='admin', password=env.ADMIN_PASSWORD,
            project='admin'):
    command = [GLANCE_COMMAND, '--os-auth-url', keystone.auth_url, '--os-username', user,
               '--os-password', password, '--os-project-name', project,
               '--os-user-domain-id', 'default', '--os-project-domain-id', 'default',
               '--os-image-url', node.url, *args]
    environ = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    environ['HOME'] = str(home)
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=environ, timeout=120)


def test_glanceclient_in_keystone_mode(keystone_stack, tokens, tmp_path):
    ks = keystone_stack.keystone
    node = keystone_stack.node_b
    image = node.create_active_image(DATA, token=tokens['admin'])
    result = _glance(ks, node, tmp_path, 'cache-queue', image['id'])
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr

    def listed():
        out = _glance(ks, node, tmp_path, 'cache-list')
        assert out.returncode == 0, out.stderr
        return image['id'] in out.stdout and 'cached' in out.stdout and out

    helpers.wait_for(listed, 'glance cache-list to show the image cached', interval=0.5)
    password, project, _role = env.USERS['demo']
    denied = _glance(ks, node, tmp_path, 'cache-list', user='demo', password=password,
                     project=project)
    assert denied.returncode == 1, denied.stdout
    result = _glance(ks, node, tmp_path, 'cache-delete', image['id'])
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
