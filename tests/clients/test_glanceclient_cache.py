"""python-glanceclient's cache commands (``glance cache-*``) against live nodes.

The real CLI runs in token mode (``--os-image-url`` plus ``--os-auth-token``). After each
command the test asks the node itself what it holds: ``cache-queue``, ``cache-delete`` and
``cache-clear`` exit 0 even when the node refuses, printing the refusal on stderr.

Queued state is only observable without racing the caching worker on a node whose
worker never runs (the ``stalled_node`` fixture); the tests that need cached and queued
images at once use it, and fill its cache by downloading.
"""

import os
import uuid

import pytest

from tests import helpers
from tests.clients.conftest import GlanceCLI

KIB = 1024
MEMBER = 'member-project'


@pytest.fixture(scope='module')
def stalled_glance(stalled_node, tmp_path_factory):
    return GlanceCLI(stalled_node.url, tmp_path_factory.mktemp('glance-home-stalled'))


def assert_ok(result):
    assert result.returncode == 0, 'exit %d\nstdout:\n%s\nstderr:\n%s' % (
        result.returncode, result.stdout, result.stderr)


def cache_state(node):
    resp = node.request('GET', '/v2/cache')
    assert resp.status_code == 200, resp.text
    return resp.json()


def cached_ids(node):
    return {e['image_id'] for e in cache_state(node)['cached_images']}


def job_state(node, image_id):
    resp = node.request('GET', '/v2/cache/jobs/%s' % image_id)
    assert resp.status_code in (200, 404), resp.text
    return resp.json()['state'] if resp.status_code == 200 else None


def cache_now(node, image_id):
    """Cache an image through the API and wait for the node to finish."""
    assert node.request('PUT', '/v2/cache/%s' % image_id).status_code == 202
    helpers.wait_for(lambda: image_id in cached_ids(node), 'image %s to be cached' % image_id)


def cache_by_download(node, image):
    assert node.request('GET', image['file']).status_code == 200
    helpers.wait_for(lambda: image['id'] in cached_ids(node), 'the download to fill the cache')


def list_rows(output):
    """cache-list's ID/State/... table as {id: [state, last accessed, last modified, size,
    hits]}."""
    rows = {}
    for line in output.splitlines():
        if line.startswith('|'):
            cells = [c.strip() for c in line.strip()[1:-1].split('|')]
            if cells[0] != 'ID':
                rows[cells[0]] = cells[1:]
    return rows


# -- cache-queue ---------------------------------------------------------------------------


def test_cache_queue_then_the_node_caches_the_images(client_node, glance):
    images = [client_node.create_active_image(os.urandom(size)) for size in (KIB, 300 * KIB)]
    result = glance('cache-queue', *[i['id'] for i in images])
    assert_ok(result)
    assert result.stderr == ''
    for image in images:
        helpers.wait_for(lambda i=image: job_state(client_node, i['id']) == 'cached',
                         'image %s to be cached' % image['id'])
    state = cache_state(client_node)
    sizes = {e['image_id']: e['size'] for e in state['cached_images']}
    assert [sizes[i['id']] for i in images] == [KIB, 300 * KIB]


def test_cache_queue_with_a_member_token_is_refused(client_node, glance):
    # The member's own image, so that the refusal is the cache policy's, not a 404.
    image = client_node.create_active_image(os.urandom(KIB), token=MEMBER)
    result = glance('cache-queue', image['id'], token=MEMBER)
    assert_ok(result)  # the CLI reports the refusal but exits 0
    assert ("You are not permitted to queue the image '%s' for caching." % image['id']
            in result.stderr)
    assert job_state(client_node, image['id']) is None
    assert image['id'] not in cache_state(client_node)['queued_images']


def test_cache_queue_of_an_unknown_image_reports_the_404(client_node, glance):
    unknown = str(uuid.uuid4())
    result = glance('cache-queue', unknown)
    assert_ok(result)
    assert "Unable to queue image '%s' for caching." % unknown in result.stderr
    assert 'No image found with ID %s' % unknown in result.stderr
    assert job_state(client_node, unknown) is None


# -- cache-list ----------------------------------------------------------------------------


def test_cache_list_shows_the_cached_image(client_node, glance):
    image = client_node.create_active_image(os.urandom(5 * KIB))
    cache_now(client_node, image['id'])
    result = glance('cache-list')
    assert_ok(result)
    row = list_rows(result.stdout)[image['id']]
    assert row[0] == 'cached'
    assert row[3:] == [str(5 * KIB), '0']


def test_cache_list_shows_cached_and_queued_images(stalled_node, stalled_glance):
    cached = stalled_node.create_active_image(os.urandom(KIB))
    cache_by_download(stalled_node, cached)
    queued = [stalled_node.create_active_image(os.urandom(KIB))['id'] for _ in range(2)]
    for image_id in queued:
        assert stalled_node.request('PUT', '/v2/cache/%s' % image_id).status_code == 202
    result = stalled_glance('cache-list')
    assert_ok(result)
    rows = list_rows(result.stdout)
    assert rows[cached['id']][0] == 'cached'
    for image_id in queued:
        assert rows[image_id] == ['queued', 'N/A', 'N/A', 'N/A', 'N/A']
    assert set(rows) == cached_ids(stalled_node) | set(cache_state(stalled_node)['queued_images'])


def test_cache_list_with_a_member_token_fails(glance):
    result = glance('cache-list', token=MEMBER)
    assert result.returncode == 1, result
    assert result.stderr.strip() == 'HTTP Policy does not allow cache_list'
    assert result.stdout == ''


# -- cache-delete --------------------------------------------------------------------------


def test_cache_delete_removes_the_cached_image(client_node, glance):
    images = [client_node.create_active_image(os.urandom(KIB)) for _ in range(2)]
    for image in images:
        cache_now(client_node, image['id'])
    result = glance('cache-delete', images[0]['id'])
    assert_ok(result)
    assert result.stderr == ''
    in_cache = cached_ids(client_node)
    assert images[0]['id'] not in in_cache
    assert images[1]['id'] in in_cache, 'only the named image goes'
    assert job_state(client_node, images[0]['id']) is None


def test_cache_delete_removes_a_queued_image(stalled_node, stalled_glance):
    image = stalled_node.create_active_image(os.urandom(KIB))
    assert stalled_node.request('PUT', '/v2/cache/%s' % image['id']).status_code == 202
    assert image['id'] in cache_state(stalled_node)['queued_images']
    assert_ok(stalled_glance('cache-delete', image['id']))
    assert image['id'] not in cache_state(stalled_node)['queued_images']


def test_cache_delete_with_a_member_token_is_refused(client_node, glance):
    image = client_node.create_active_image(os.urandom(KIB))
    cache_now(client_node, image['id'])
    result = glance('cache-delete', image['id'], token=MEMBER)
    assert_ok(result)
    assert ("You are not permitted to delete the image '%s' from cache." % image['id']
            in result.stderr)
    assert image['id'] in cached_ids(client_node)


# -- cache-clear ---------------------------------------------------------------------------


def _cached_and_queued(node):
    cached = node.create_active_image(os.urandom(KIB))
    cache_by_download(node, cached)
    queued = node.create_active_image(os.urandom(KIB))
    assert node.request('PUT', '/v2/cache/%s' % queued['id']).status_code == 202
    assert queued['id'] in cache_state(node)['queued_images']
    return cached['id'], queued['id']


@pytest.mark.parametrize('args, cache_cleared, queue_cleared', [
    ((), True, True),
    (('--target', 'both'), True, True),
    (('--target', 'cache'), True, False),
    (('--target', 'queue'), False, True),
])
def test_cache_clear(stalled_node, stalled_glance, args, cache_cleared, queue_cleared):
    cached, queued = _cached_and_queued(stalled_node)
    result = stalled_glance('cache-clear', *args)
    assert_ok(result)
    assert result.stderr == ''
    state = cache_state(stalled_node)
    assert (cached not in {e['image_id'] for e in state['cached_images']}) == cache_cleared
    assert (queued not in state['queued_images']) == queue_cleared
    if cache_cleared and queue_cleared:
        assert state == {'cached_images': [], 'queued_images': []}


def test_cache_clear_with_a_member_token_is_refused(stalled_node, stalled_glance):
    cached, queued = _cached_and_queued(stalled_node)
    result = stalled_glance('cache-clear', token=MEMBER)
    assert_ok(result)
    assert 'You are not permitted to delete image(s) from cache.' in result.stderr
    assert cached in cached_ids(stalled_node)
    assert queued in cache_state(stalled_node)['queued_images']
