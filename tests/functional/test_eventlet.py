"""The eventlet compatibility mode: the same app and worker in a monkey-patched process."""

import os

from tests import helpers


def test_eventlet_server_caches_an_image(tmp_path):
    node = helpers.Node(tmp_path, 'sqlite:///%s' % (tmp_path / 'glance-cache.db'),
                        server_args=['--server', 'eventlet']).start()
    try:
        data = os.urandom(3 * 1024 * 1024 + 11)
        image = node.create_image()
        assert node.upload(image['id'], helpers.chunks(data)).status_code == 204
        assert node.request('PUT', '/v2/cache/%s' % image['id']).status_code == 202

        def cached():
            body = node.request('GET', '/v2/cache').json()
            return image['id'] in [e['image_id'] for e in body['cached_images']]

        helpers.wait_for(cached, 'the image to be cached by the green worker')
        job = node.request('GET', '/v2/cache/jobs/%s' % image['id']).json()
        assert job['state'] == 'cached' and job['attempts'] == 1
        assert node.request('GET', image['file']).content == data
    finally:
        node.stop()
    assert node.proc.returncode == 0
    assert 'Traceback' not in node.log()
