"""glance-cache-manage's cluster commands, run as processes against three real nodes.

Every command goes to node1 (``--url``), which passes requests on to the nodes named by
``--nodes``. Targets are always named explicitly: other tests of this package add and
remove nodes, so ``all`` would not mean the same from one test to the next.
"""

import os
import subprocess
import uuid

from tests import helpers

TIMEOUT = 120
THREE = 'node1,node2,node3'
# Variables the command reads; the tests pass --url and --os-auth-token instead.
COMMAND_ENV = ('OS_AUTH_TOKEN', 'OS_IMAGE_URL', 'GLANCE_CACHE_URL')


def manage(cluster, *args, token='admin'):
    """Run ``glance-cache-manage --url <node1> --os-auth-token TOKEN ARGS``."""
    env = {k: v for k, v in os.environ.items() if k not in COMMAND_ENV}
    env['HOME'] = cluster.workdir  # no configuration file where the command looks
    command = [helpers.MANAGE_COMMAND, '--url', cluster.nodes['node1'].url,
               '--os-auth-token', token, *args]
    return subprocess.run(command, capture_output=True, text=True, env=env,
                          cwd=cluster.workdir, timeout=TIMEOUT)


def assert_exit(result, code=0):
    assert result.returncode == code, 'exit %d\nstdout:\n%s\nstderr:\n%s' % (
        result.returncode, result.stdout, result.stderr)


def cached_ids(node):
    resp = node.request('GET', '/v2/cache')
    assert resp.status_code == 200, resp.text
    return {e['image_id'] for e in resp.json()['cached_images']}


def pinned(cluster):
    resp = cluster.nodes['node1'].request('GET', '/v2/cache/pins')
    assert resp.status_code == 200, resp.text
    return {p['image_id']: p['nodes'] for p in resp.json()['pins']}


def table_rows(output):
    """The rows of the one boxed table in ``output``, as dicts keyed by header."""
    cells = [[c.strip() for c in line[2:-2].split(' | ')]
             for line in output.splitlines() if line.startswith('|')]
    header, *rows = cells
    return [dict(zip(header, row, strict=True)) for row in rows]


def new_image(cluster, size=200_000):
    return cluster.nodes['node1'].create_active_image(os.urandom(size))['id']


def cached_on(cluster, image_id, names):
    """Queue the image on ``names`` over HTTP and wait until each has it."""
    resp = cluster.nodes['node1'].request('PUT', '/v2/cache/%s?nodes=%s'
                                          % (image_id, ','.join(names)))
    assert resp.status_code == 202, resp.text
    for name in names:
        helpers.wait_for(lambda n=name: image_id in cached_ids(cluster.nodes[n]),
                         'image %s cached on %s' % (image_id, name))


def test_queue_wait_caches_on_every_named_node(cluster):
    image_id = new_image(cluster)
    result = manage(cluster, 'queue', image_id, '--nodes', THREE, '--wait')
    assert_exit(result)
    lines = result.stdout.splitlines()
    progress = result.stderr.splitlines()
    assert progress[0] == 'Image %s on node1, node2, node3:' % image_id
    for name in THREE.split(','):
        assert '%s: queued image %s for caching' % (name, image_id) in lines
        assert '%s: image %s is cached' % (name, image_id) in lines
        # Not a terminal: a final progress line per node, no redraws.
        assert any(line.startswith('%s cached, 195.3 KiB' % name) for line in progress)
        assert image_id in cached_ids(cluster.nodes[name])
    assert '\x1b[' not in result.stderr and '\r' not in result.stderr


def test_queue_without_wait_prints_a_line_per_node(cluster):
    image_id = new_image(cluster)
    result = manage(cluster, 'queue', image_id, '--nodes', 'node2,node3')
    assert_exit(result)
    assert result.stdout.splitlines() == ['node2: queued image %s for caching' % (image_id),
                                          'node3: queued image %s for caching' % (image_id)]
    for name in ('node2', 'node3'):
        helpers.wait_for(lambda n=name: image_id in cached_ids(cluster.nodes[n]),
                         'image %s cached on %s' % (image_id, name))
    assert image_id not in cached_ids(cluster.nodes['node1'])


def test_queue_wait_refused_by_every_node_fails_with_each_reason(cluster):
    image_id = cluster.nodes['node1'].create_active_image(os.urandom(10_000),
                                                         visibility='public')['id']
    result = manage(cluster, 'queue', image_id, '--nodes', 'node1,node2', '--wait',
                    token='member-project')
    assert_exit(result, 1)
    assert result.stdout == ''
    for name in ('node1', 'node2'):
        assert '%s: FAILED (HTTP 403: Policy does not allow cache_image' % name in result.stderr
        assert 'image %s was not cached on %s: HTTP 403' % (image_id, name) in result.stderr
        assert image_id not in cached_ids(cluster.nodes[name])


def test_an_unknown_node_name_fails_with_the_server_message(cluster):
    image_id = new_image(cluster)
    for args in (('queue', image_id, '--wait'), ('delete', image_id), ('clear',),
                 ('pin', image_id)):
        result = manage(cluster, *args, '--nodes', 'node1,nosuchnode')
        assert_exit(result, 1)
        assert 'HTTP 400 Bad Request: Unknown node(s): nosuchnode' in result.stderr, args
        assert result.stdout == ''
    assert image_id not in cached_ids(cluster.nodes['node1'])
    assert image_id not in pinned(cluster)
    usage = manage(cluster, 'queue', image_id, '--nodes', ',')
    assert_exit(usage, 2)
    assert 'argument --nodes' in usage.stderr


def test_clear_one_node_leaves_the_others(cluster):
    image_id = new_image(cluster)
    cached_on(cluster, image_id, ['node1', 'node2', 'node3'])
    result = manage(cluster, 'clear', '--nodes', 'node2')
    assert_exit(result)
    assert result.stdout.splitlines() == ['node2: cleared the cache and the queue']
    assert image_id not in cached_ids(cluster.nodes['node2'])
    assert image_id in cached_ids(cluster.nodes['node1'])
    assert image_id in cached_ids(cluster.nodes['node3'])


def test_delete_on_named_nodes_and_a_refusal_on_one(cluster):
    image_id = new_image(cluster)
    cached_on(cluster, image_id, ['node1', 'node2', 'node3'])
    result = manage(cluster, 'delete', image_id, '--nodes', 'node1,node3')
    assert_exit(result)
    assert result.stdout.splitlines() == [
        '%s: deleted image %s from the cache and the queue' % (name, image_id)
        for name in ('node1', 'node3')]
    assert image_id not in cached_ids(cluster.nodes['node1'])
    assert image_id not in cached_ids(cluster.nodes['node3'])
    assert image_id in cached_ids(cluster.nodes['node2'])

    # Pinned to node2, it cannot leave node2's cache: exit 1, node3's part still done.
    assert_exit(manage(cluster, 'pin', image_id, '--nodes', 'node2'))
    try:
        cached_on(cluster, image_id, ['node3'])
        result = manage(cluster, 'delete', image_id, '--nodes', 'node2,node3')
        assert_exit(result, 1)
        assert result.stdout.splitlines() == [
            'node3: deleted image %s from the cache and the queue' % image_id]
        assert 'node2: FAILED (HTTP 409: Image %s is pinned to node node2' % image_id \
            in result.stderr
        assert image_id in cached_ids(cluster.nodes['node2'])
        assert image_id not in cached_ids(cluster.nodes['node3'])
    finally:
        assert_exit(manage(cluster, 'unpin', image_id))


def test_nodes_shows_the_cluster(cluster):
    image_id = new_image(cluster, size=100_000)
    cached_on(cluster, image_id, ['node2'])
    # The table shows what each node's heartbeat last reported.
    helpers.wait_for(lambda: cluster.view()['node2']['cached_images'] >= 1,
                     'node2 to report its cached image')
    result = manage(cluster, 'nodes')
    assert_exit(result)
    rows = {r['Name']: r for r in table_rows(result.stdout)}
    for name in ('node1', 'node2', 'node3'):
        assert rows[name]['URL'] == cluster.nodes[name].url
        assert rows[name]['State'] == 'up'
        assert rows[name]['Last heartbeat'].endswith(' s ago')
        assert rows[name]['Running'] == '0' or rows[name]['Running'].startswith('1 (')
    assert rows['node2']['Cached'].split(',')[0] != '0'


def test_a_node_that_is_down_fails_the_wait_and_can_be_forgotten(cluster):
    name = 'extra-%s' % uuid.uuid4().hex[:6]
    node = cluster.start_node(name)
    try:
        refused = manage(cluster, 'nodes', '--forget', name)
        assert_exit(refused, 1)
        assert 'HTTP 409 Conflict: Node %s is up' % name in refused.stderr
        node.stop()
        cluster.wait_until_down(name)

        # Down at queue time: reported failed and not followed; the others are.
        image_id = new_image(cluster)
        result = manage(cluster, 'queue', image_id, '--nodes', 'node1,%s' % name, '--wait')
        assert_exit(result, 1)
        assert result.stdout.splitlines() == ['node1: queued image %s for caching' % image_id,
                                              'node1: image %s is cached' % image_id]
        assert '%s: FAILED (down: node is down' % name in result.stderr
        assert 'Image %s on node1:' % image_id in result.stderr.splitlines()
        assert 'image %s was not cached on %s: down: node is down' % (image_id, name) \
            in result.stderr
        assert image_id in cached_ids(cluster.nodes['node1'])
        listed = manage(cluster, 'nodes')
        assert_exit(listed)
        assert {r['Name']: r['State'] for r in table_rows(listed.stdout)}[name] == 'down'

        result = manage(cluster, 'nodes', '--forget', name)
        assert_exit(result)
        assert result.stdout.strip() == 'Forgot node %s' % name
        assert name not in cluster.view()
    finally:
        cluster.nodes.pop(name).stop()
    unknown = manage(cluster, 'nodes', '--forget', name)
    assert_exit(unknown, 1)
    assert 'HTTP 404 Not Found: No node named %s' % name in unknown.stderr


def test_pin_pins_and_unpin(cluster):
    image_id = new_image(cluster, size=150_000)
    result = manage(cluster, 'pin', image_id, '--nodes', 'node1,node2')
    assert_exit(result)
    assert result.stdout.splitlines() == [
        'Pinned image %s (146.5 KiB) to node(s) node1, node2' % image_id,
        'node1: queued image %s for caching' % image_id,
        'node2: queued image %s for caching' % image_id]
    assert pinned(cluster)[image_id] == ['node1', 'node2']
    for name in ('node1', 'node2'):
        helpers.wait_for(lambda n=name: image_id in cached_ids(cluster.nodes[n]),
                         'pinned image cached on %s' % name)

    again = manage(cluster, 'pin', image_id, '--nodes', 'node1')
    assert_exit(again)
    assert again.stdout.splitlines()[0] == (
        'Already pinned: image %s (146.5 KiB) to node(s) node1, node2' % image_id)

    listed = manage(cluster, 'pins')
    assert_exit(listed)
    row = next(r for r in table_rows(listed.stdout) if r['Image ID'] == image_id)
    assert row['Nodes'] == 'node1, node2' and row['Size'] == '150000'

    result = manage(cluster, 'unpin', image_id, '--nodes', 'node2')
    assert_exit(result)
    assert result.stdout.strip() == 'Unpinned image %s from node(s) node2' % image_id
    assert pinned(cluster)[image_id] == ['node1']
    result = manage(cluster, 'unpin', image_id)
    assert_exit(result)
    assert result.stdout.strip() == 'Unpinned image %s' % image_id
    assert image_id not in pinned(cluster)
    assert image_id in cached_ids(cluster.nodes['node1']), 'unpinning leaves the copies'

    missing = manage(cluster, 'unpin', image_id)
    assert_exit(missing, 1)
    assert 'HTTP 404 Not Found: Image %s is not pinned' % image_id in missing.stderr
