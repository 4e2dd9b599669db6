"""Several nodes on one database and store, driven through any one of them."""

import datetime
import os
import socket
import threading
import uuid

import sqlalchemy as sa

from glance_cache.db import models
from tests import helpers
from tests.cluster.conftest import NODE_TIMEOUT

THREE = 'node1,node2,node3'


def _cached_ids(node):
    resp = node.request('GET', '/v2/cache')
    assert resp.status_code == 200, resp.text
    return {e['image_id'] for e in resp.json()['cached_images']}


def _on_disk(node, image_id):
    return os.path.isfile(os.path.join(node.cache_dir, image_id))


def _holders(node, image_id):
    resp = node.request('GET', '/v2/cache/nodes/%s' % image_id)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _outcomes(resp):
    return {o['node']: o for o in resp.json()['nodes']}


def _wait_cached(nodes, image_id):
    for node in nodes:
        helpers.wait_for(lambda n=node: image_id in _cached_ids(n),
                         'image %s cached on %s' % (image_id, node.name))


def _image(cluster, size=200_000, **body):
    data = os.urandom(size)
    return cluster.nodes['node1'].create_active_image(data, **body), data


def test_queue_on_every_node_through_one(cluster):
    node1, node2, node3 = (cluster.nodes[n] for n in ('node1', 'node2', 'node3'))
    image, data = _image(cluster)
    image_id = image['id']

    resp = node1.request('PUT', '/v2/cache/%s?nodes=%s' % (image_id, THREE))
    assert resp.status_code == 202, resp.text
    outcomes = _outcomes(resp)
    assert sorted(outcomes) == ['node1', 'node2', 'node3']
    for name, outcome in outcomes.items():
        assert outcome == {'node': name, 'url': cluster.nodes[name].url, 'state': 'up',
                           'status': 202, 'ok': True, 'message': None}

    # Each node caches it on its own disk and serves it from there.
    _wait_cached((node1, node2, node3), image_id)
    for node in (node1, node2, node3):
        assert _on_disk(node, image_id)
        got = node.request('GET', '/v2/images/%s/file' % image_id)
        assert got.status_code == 200 and got.content == data
    # A node records its holding just after it commits: poll.
    helpers.wait_for(lambda: sorted(_holders(node2, image_id)) ==
                     sorted(n.url for n in (node1, node2, node3)), 'three holders')

    # Every node's progress, through one node.
    resp = node3.request('GET', '/v2/cache/jobs/%s?nodes=%s' % (image_id, THREE))
    assert resp.status_code == 200, resp.text
    for name, outcome in _outcomes(resp).items():
        assert outcome['body']['state'] == 'cached'
        assert outcome['body']['node'] == name

    # A plain request still acts on the receiving node only.
    resp = node2.request('DELETE', '/v2/cache/%s' % image_id)
    assert resp.status_code == 204
    assert image_id not in _cached_ids(node2) and not _on_disk(node2, image_id)
    assert image_id in _cached_ids(node1) and image_id in _cached_ids(node3)
    helpers.wait_for(lambda: sorted(_holders(node1, image_id)) == sorted([node1.url, node3.url]),
                     'node2 to be dropped from the holders')


def test_holders_are_exactly_the_nodes_that_cached_it(cluster):
    node1, node2, node3 = (cluster.nodes[n] for n in ('node1', 'node2', 'node3'))
    image, _data = _image(cluster)
    image_id = image['id']
    assert _holders(node3, image_id) == []

    resp = node3.request('PUT', '/v2/cache/%s?nodes=node1,node2' % image_id)
    assert resp.status_code == 202, resp.text
    assert sorted(_outcomes(resp)) == ['node1', 'node2']
    _wait_cached((node1, node2), image_id)
    helpers.wait_for(lambda: sorted(_holders(node3, image_id)) ==
                     sorted([node1.url, node2.url]), 'node1 and node2 as the holders')
    assert image_id not in _cached_ids(node3)
    assert sorted(_holders(node3, image_id)) == sorted([node1.url, node2.url])

    # Unknown images and ids are 404 here as everywhere.
    assert node1.request('GET', '/v2/cache/nodes/%s' % uuid.uuid4()).status_code == 404
    assert node1.request('GET', '/v2/cache/nodes/not-an-id').status_code == 404


def test_clearing_one_node_leaves_the_others(cluster):
    node1, node2, node3 = (cluster.nodes[n] for n in ('node1', 'node2', 'node3'))
    image, _data = _image(cluster)
    image_id = image['id']
    resp = node1.request('PUT', '/v2/cache/%s?nodes=%s' % (image_id, THREE))
    assert resp.status_code == 202, resp.text
    _wait_cached((node1, node2, node3), image_id)

    resp = node1.request('DELETE', '/v2/cache?nodes=node2')
    assert resp.status_code == 200, resp.text
    assert _outcomes(resp)['node2']['status'] == 204
    assert _cached_ids(node2) == set()
    assert not _on_disk(node2, image_id)
    assert image_id in _cached_ids(node1) and _on_disk(node1, image_id)
    assert image_id in _cached_ids(node3) and _on_disk(node3, image_id)


def test_unknown_target_names_are_refused_before_anything_happens(cluster):
    node1 = cluster.nodes['node1']
    image, _data = _image(cluster)
    for nodes in ('node1,nosuchnode', 'all,node1', ','):
        resp = node1.request('PUT', '/v2/cache/%s?nodes=%s' % (image['id'], nodes))
        assert resp.status_code == 400, resp.text
        assert resp.json()['error']['code'] == 400
    assert image['id'] not in _cached_ids(node1)
    job = node1.request('GET', '/v2/cache/jobs/%s' % image['id'])
    assert job.status_code == 404


def test_a_forwarded_member_token_is_refused_by_the_target(cluster):
    node1, node2 = cluster.nodes['node1'], cluster.nodes['node2']
    image, _data = _image(cluster, visibility='public')
    image_id = image['id']

    direct = node2.request('PUT', '/v2/cache/%s' % image_id, token='member-project')
    assert direct.status_code == 403, direct.text
    resp = node1.request('PUT', '/v2/cache/%s?nodes=node2' % image_id, token='member-project')
    assert resp.status_code == 207, resp.text
    outcome = _outcomes(resp)['node2']
    assert outcome['status'] == 403 and outcome['ok'] is False
    assert outcome['message'] == direct.json()['error']['message']
    assert image_id not in _cached_ids(node2)
    assert node2.request('GET', '/v2/cache/jobs/%s' % image_id).status_code == 404
    # The same token is refused by node1's own part as it would be directly.
    resp = node1.request('PUT', '/v2/cache/%s?nodes=node1,node2' % image_id,
                         token='member-project')
    assert {o['status'] for o in resp.json()['nodes']} == {403}


def test_a_stopped_node_is_down_and_never_blocks_the_others(cluster):
    node1, node2 = cluster.nodes['node1'], cluster.nodes['node2']
    node3 = cluster.nodes['node3']
    image, _data = _image(cluster)
    image_id = image['id']
    node3.stop()
    try:
        cluster.wait_until_down('node3')
        view = cluster.view('node2')
        assert view['node3']['state'] == 'down'
        assert view['node3']['heartbeat_age'] > NODE_TIMEOUT
        assert view['node1']['state'] == view['node2']['state'] == 'up'

        resp = node1.request('PUT', '/v2/cache/%s?nodes=all' % image_id)
        assert resp.status_code == 207, resp.text
        outcomes = _outcomes(resp)
        assert outcomes['node3']['state'] == 'down' and outcomes['node3']['ok'] is False
        assert outcomes['node3']['status'] is None
        assert outcomes['node1']['status'] == outcomes['node2']['status'] == 202
        _wait_cached((node1, node2), image_id)
        # A node that is down is not offered as a holder.
        assert node3.url not in _holders(node1, image_id)
    finally:
        node3.start()
        cluster.wait_until_up('node3', via='node1')
    # Back, under a new port: it registered its new URL.
    assert cluster.view()['node3']['url'] == node3.url


def test_pinned_image_is_cached_by_a_node_that_joins_later_and_never_evicted(cluster):
    node1 = cluster.nodes['node1']
    pinned, pinned_data = _image(cluster, size=300_000)
    resp = node1.request('PUT', '/v2/cache/pins/%s' % pinned['id'])
    assert resp.status_code == 201, resp.text
    assert resp.json()['nodes'] == ['all']
    assert {o['status'] for o in resp.json()['caching']} == {202}
    _wait_cached([cluster.nodes[n] for n in ('node1', 'node2', 'node3')], pinned['id'])

    # A fourth node, started afterwards, caches it with no further call.
    node4 = cluster.start_node('node4', {'max_size': 1_000_000, 'low_watermark': 0.5})
    try:
        _wait_cached([node4], pinned['id'])
        job = node4.request('GET', '/v2/cache/jobs/%s' % pinned['id']).json()
        assert job['pinned'] is True and job['state'] == 'cached'
        assert cluster.view()['node4']['pinned_images'] >= 1

        # An unpinned image joins it; an eviction pass takes the unpinned one only.
        other, _other_data = _image(cluster, size=300_000)
        assert node4.request('PUT', '/v2/cache/%s' % other['id']).status_code == 202
        _wait_cached([node4], other['id'])
        # The pinned entry is the least recently used: LRU alone would take it first.
        resp = node4.request('POST', '/v2/cache/prune')
        assert resp.status_code == 200, resp.text
        assert resp.json() == {'total_files_pruned': 1, 'total_bytes_pruned': 300_000}
        assert _cached_ids(node4) == {pinned['id']}
        got = node4.request('GET', '/v2/images/%s/file' % pinned['id'])
        assert got.content == pinned_data

        # A pinned image cannot be deleted from a cache until it is unpinned ...
        resp = node4.request('DELETE', '/v2/cache/%s' % pinned['id'])
        assert resp.status_code == 409, resp.text
        assert 'pinned' in resp.json()['error']['message']
        # ... and after unpinning it is an ordinary entry again.
        resp = node1.request('DELETE', '/v2/cache/pins/%s' % pinned['id'])
        assert resp.status_code == 204, resp.text
        assert pinned['id'] in _cached_ids(node4)
        assert node4.request('DELETE', '/v2/cache/%s' % pinned['id']).status_code == 204
    finally:
        cluster.forget('node4')
    assert 'node4' not in cluster.view()


def test_a_pin_past_a_node_budget_is_refused(cluster):
    node1 = cluster.nodes['node1']
    node5 = cluster.start_node('node5', {'max_size': 1_000_000, 'pinned_max_size': 250_000})
    try:
        image, _data = _image(cluster, size=300_000)
        resp = node1.request('PUT', '/v2/cache/pins/%s?nodes=node1,node5' % image['id'])
        assert resp.status_code == 409, resp.text
        message = resp.json()['error']['message']
        assert 'node5 (0 of 250000 bytes pinned)' in message and 'pinned_max_size' in message
        # Refused as a whole: no pin, nothing queued anywhere.
        assert all(p['image_id'] != image['id']
                   for p in node1.request('GET', '/v2/cache/pins').json()['pins'])
        for node in (node1, node5):
            assert node.request('GET', '/v2/cache/jobs/%s' % image['id']).status_code == 404
        # Pinned to the nodes with room, it is fine.
        resp = node1.request('PUT', '/v2/cache/pins/%s?nodes=node1' % image['id'])
        assert resp.status_code == 201, resp.text
        assert resp.json()['nodes'] == ['node1']
        resp = node1.request('DELETE', '/v2/cache/pins/%s?nodes=nosuchnode' % image['id'])
        assert resp.status_code == 400, resp.text
        resp = node1.request('DELETE', '/v2/cache/pins/%s?nodes=node1' % image['id'])
        assert resp.status_code == 204
        assert node1.request('DELETE', '/v2/cache/pins/%s' % image['id']).status_code == 404
    finally:
        cluster.forget('node5')


def test_deleting_an_image_drops_it_from_every_node(cluster):
    node1, node2, node3 = (cluster.nodes[n] for n in ('node1', 'node2', 'node3'))
    image, _data = _image(cluster)
    image_id = image['id']
    node1.request('PUT', '/v2/cache/pins/%s?nodes=node2,node3' % image_id)
    _wait_cached((node2, node3), image_id)

    assert node1.request('DELETE', '/v2/images/%s' % image_id).status_code == 204
    # Its pins go with it, and each node drops its copy at its next heartbeat.
    for node in (node2, node3):
        helpers.wait_for(lambda n=node: not _on_disk(n, image_id),
                         'the deleted image to leave %s' % node.name)
    assert all(p['image_id'] != image_id
               for p in node1.request('GET', '/v2/cache/pins').json()['pins'])


def test_a_peer_that_cuts_its_answer_short_is_reported_not_fatal(cluster):
    """A node whose URL answers with a broken HTTP response fails alone; the rest is done."""
    listener = socket.create_server(('127.0.0.1', 0))
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b'HTTP/1.1 202 Accepted\r\nContent-Length: 100\r\n\r\n{"cut')

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    engine = sa.create_engine(cluster.db_url)
    later = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(
        hours=1)
    with engine.begin() as conn:  # a heartbeat from the future: up for the whole test
        conn.execute(models.nodes.insert().values(
            name='liar', url='http://127.0.0.1:%d' % listener.getsockname()[1],
            started_at=later, heartbeat_at=later, max_size=10 ** 9,
            pinned_max_size=10 ** 9, queued_jobs=0, failed_jobs=0, running='[]'))
    node1 = cluster.nodes['node1']
    image, _data = _image(cluster)
    try:
        resp = node1.request('PUT', '/v2/cache/%s?nodes=node1,liar' % image['id'])
        assert resp.status_code == 207, resp.text
        outcomes = _outcomes(resp)
        assert outcomes['node1']['status'] == 202
        assert outcomes['liar']['ok'] is False and outcomes['liar']['status'] is None
        assert 'IncompleteRead' in outcomes['liar']['message']
        # A pin is stored once, and answered as stored, whatever a target does.
        resp = node1.request('PUT', '/v2/cache/pins/%s?nodes=node1,liar' % image['id'])
        assert resp.status_code == 201, resp.text
        assert {o['node']: o['ok'] for o in resp.json()['caching']} == {
            'node1': True, 'liar': False}
        assert node1.request('DELETE', '/v2/cache/pins/%s' % image['id']).status_code == 204
    finally:
        stop.set()
        server.join()
        with engine.begin() as conn:
            conn.execute(models.image_pins.delete().where(
                models.image_pins.c.node_name == 'liar'))
            conn.execute(models.nodes.delete().where(models.nodes.c.name == 'liar'))
        engine.dispose()
        listener.close()
