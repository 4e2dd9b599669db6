"""glance-cache-manage's cache commands, run as processes against real nodes.

Each command runs the installed console script with a private HOME and no configuration
file, as an operator would, and each test checks the exit status, what the command
printed and what the node holds afterwards (through the node's own API).
"""

import os
import pty
import re
import socket
import subprocess
import uuid

import pytest

from tests import helpers

KIB = 1024
MIB = 1024 * KIB
TIMEOUT = 120
# Variables the command reads; the tests set them explicitly or not at all.
COMMAND_ENV = ('OS_AUTH_TOKEN', 'OS_IMAGE_URL', 'GLANCE_CACHE_URL')


@pytest.fixture(scope='module')
def cache_node(tmp_path_factory):
    """A SQLite node with a caching worker, shared by this module's tests."""
    workdir = tmp_path_factory.mktemp('manage-node')
    cache_dir = os.path.join(str(workdir), 'cache')
    n = helpers.Node(workdir, 'sqlite:///%s' % (workdir / 'glance-cache.db'),
                     {'cache': {'cache_dir': cache_dir}})
    n.cache_dir = cache_dir
    n.start()
    yield n
    n.stop()


@pytest.fixture(scope='module')
def home(tmp_path_factory):
    return tmp_path_factory.mktemp('manage-home')


@pytest.fixture
def manage(home):
    """Runs ``glance-cache-manage``; ``url``/``token`` None leave out --url/--os-auth-token."""

    def run(*args, url=None, token='admin', env=None, stderr=subprocess.PIPE):
        command = [helpers.MANAGE_COMMAND]
        if url is not None:
            command += ['--url', url]
        if token is not None:
            command += ['--os-auth-token', token]
        full_env = {k: v for k, v in os.environ.items() if k not in COMMAND_ENV}
        # No configuration file anywhere the command looks: HOME and cwd are empty.
        full_env['HOME'] = str(home)
        full_env.update(env or {})
        return subprocess.run(command + list(args), stdout=subprocess.PIPE, stderr=stderr,
                              text=True, env=full_env, cwd=str(home), timeout=TIMEOUT)

    return run


def node_manage(manage, node):
    """``manage`` bound to ``node``'s URL."""
    return lambda *args, **kw: manage(*args, url=node.url, **kw)


def assert_ok(result):
    assert result.returncode == 0, 'exit %d\nstdout:\n%s\nstderr:\n%s' % (
        result.returncode, result.stdout, result.stderr)


def assert_fails(result, code=1):
    assert result.returncode == code, 'exit %d\nstdout:\n%s\nstderr:\n%s' % (
        result.returncode, result.stdout, result.stderr)


def cache_state(node):
    resp = node.request('GET', '/v2/cache')
    assert resp.status_code == 200, resp.text
    return resp.json()


def cached_sizes(node):
    return {e['image_id']: e['size'] for e in cache_state(node)['cached_images']}


def job(node, image_id):
    resp = node.request('GET', '/v2/cache/jobs/%s' % image_id)
    assert resp.status_code in (200, 404), resp.text
    return resp.json() if resp.status_code == 200 else None


def corrupt_store_data(node, image_id):
    """Flip the first byte of the image's data in the store: same size, wrong checksum."""
    with open(os.path.join(node.store_dir, image_id), 'r+b') as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))


def table_rows(output, title):
    """The rows of the boxed table under the line ``title``, as dicts keyed by header."""
    lines = output.splitlines()
    cells = []
    for line in lines[lines.index(title) + 1:]:
        if not line.startswith(('|', '+')):
            break
        if line.startswith('|'):
            cells.append([c.strip() for c in line[2:-2].split(' | ')])
    if not cells:
        return []
    header, *rows = cells
    return [dict(zip(header, row, strict=True)) for row in rows]


def closed_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# -- queue ---------------------------------------------------------------------------------


def test_queue_wait_caches_the_image(cache_node, manage):
    data = os.urandom(3 * MIB + 5)
    image = cache_node.create_active_image(data)
    result = node_manage(manage, cache_node)('queue', image['id'], '--wait')
    assert_ok(result)
    assert 'Image %s is cached' % image['id'] in result.stdout
    assert '%s cached, 3.00 MiB' % image['id'] in result.stderr
    assert '\r' not in result.stderr, 'no in-place redraws when stderr is not a terminal'
    assert cached_sizes(cache_node)[image['id']] == len(data)
    assert job(cache_node, image['id'])['state'] == 'cached'


def test_queue_without_wait_returns_and_the_node_caches(cache_node, manage):
    first = cache_node.create_active_image(os.urandom(100 * KIB))
    second = cache_node.create_active_image(os.urandom(200 * KIB))
    result = node_manage(manage, cache_node)('queue', first['id'], second['id'], first['id'])
    assert_ok(result)
    assert result.stdout.splitlines() == ['Queued image %s for caching' % i
                                          for i in (first['id'], second['id'])]
    helpers.wait_for(lambda: {first['id'], second['id']} <= set(cached_sizes(cache_node)),
                     'both images to be cached')


@pytest.mark.parametrize('image_id', [str(uuid.uuid4()), 'not-an-image-id'])
def test_queue_of_an_unknown_image_fails_with_the_404_message(cache_node, manage, image_id):
    result = node_manage(manage, cache_node)('queue', image_id, '--wait')
    assert_fails(result)
    assert 'cannot queue image %s: HTTP 404 Not Found: No image found with ID %s' % (
        image_id, image_id) in result.stderr
    assert 'Queued' not in result.stdout
    assert image_id not in cache_state(cache_node)['queued_images']


def test_queue_of_an_image_without_data_fails_with_the_400_message(cache_node, manage):
    image = cache_node.create_image()
    result = node_manage(manage, cache_node)('queue', image['id'])
    assert_fails(result)
    assert 'HTTP 400 Bad Request: Only active images can be cached' in result.stderr
    assert job(cache_node, image['id']) is None


def test_queue_reports_each_failure_and_still_queues_the_others(cache_node, manage):
    image = cache_node.create_active_image(os.urandom(10 * KIB))
    unknown = str(uuid.uuid4())
    result = node_manage(manage, cache_node)('queue', unknown, image['id'], '--wait')
    assert_fails(result)
    assert 'No image found with ID %s' % unknown in result.stderr
    assert 'Image %s is cached' % image['id'] in result.stdout
    assert image['id'] in cached_sizes(cache_node)


def test_queue_wait_with_a_member_token_fails_with_the_403_message(cache_node, manage):
    # The member's own image: it may see it, so the refusal is the cache policy's.
    image = cache_node.create_active_image(os.urandom(10 * KIB), token='member-project')
    result = node_manage(manage, cache_node)('queue', image['id'], '--wait',
                                             token='member-project')
    assert_fails(result)
    assert 'HTTP 403 Forbidden: Policy does not allow cache_image' in result.stderr
    assert job(cache_node, image['id']) is None
    assert image['id'] not in cached_sizes(cache_node)


def test_queue_wait_of_a_corrupt_image_fails_with_the_reason(cache_node, manage):
    image = cache_node.create_active_image(os.urandom(64 * KIB))
    corrupt_store_data(cache_node, image['id'])
    run = node_manage(manage, cache_node)
    result = run('queue', image['id'], '--wait')
    assert_fails(result)
    assert 'image %s was not cached: checksum mismatch' % image['id'] in result.stderr
    assert 'failed after 1 attempt(s): checksum mismatch' in result.stderr
    assert 'is cached' not in result.stdout
    assert job(cache_node, image['id'])['state'] == 'failed'
    assert image['id'] not in cached_sizes(cache_node)
    listed = run('list')
    assert_ok(listed)
    row = next(r for r in table_rows(listed.stdout, 'Caching jobs:')
               if r['Image ID'] == image['id'])
    assert row['State'] == 'failed'
    assert row['Attempts'] == '1'
    assert row['Last error'].startswith('checksum mismatch')


def test_queue_wait_gives_up_at_the_timeout(stalled_node, manage):
    image = stalled_node.create_active_image(os.urandom(10 * KIB))
    result = node_manage(manage, stalled_node)('queue', image['id'], '--wait',
                                               '--timeout', '1')
    assert_fails(result)
    assert 'image %s was not cached: timed out, still queued after 1 s' % image['id'] \
        in result.stderr
    # Not a terminal: one line when the state is first seen, none for each poll.
    assert result.stderr.count('%s queued' % image['id']) == 1
    assert '\r' not in result.stderr
    assert image['id'] in cache_state(stalled_node)['queued_images']


def test_queue_wait_redraws_its_line_on_a_terminal(stalled_node, manage):
    image = stalled_node.create_active_image(os.urandom(10 * KIB))
    master, slave = pty.openpty()
    try:
        result = node_manage(manage, stalled_node)('queue', image['id'], '--wait',
                                                   '--timeout', '1.5', stderr=slave)
        os.close(slave)
        slave = None
        output = b''
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            output += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert_fails(result)
    text = output.decode()
    # Polled every 0.2 s for 1.5 s: the queued line is redrawn in place several times.
    assert len(re.findall(r'\r%s queued\s*' % image['id'], text)) >= 3, repr(text)
    assert 'timed out, still queued' in text


# -- list, delete --------------------------------------------------------------------------


def test_list_shows_cached_images_and_jobs(cache_node, manage):
    data = os.urandom(300 * KIB)
    image = cache_node.create_active_image(data)
    run = node_manage(manage, cache_node)
    assert_ok(run('queue', image['id'], '--wait'))
    result = run('list')
    assert_ok(result)
    cached = {r['Image ID']: r for r in table_rows(result.stdout, 'Cached images:')}
    assert cached[image['id']]['Size'] == str(len(data))
    assert cached[image['id']]['Hits'] == '0'
    assert set(cached) == set(cached_sizes(cache_node))
    jobs = {r['Image ID']: r for r in table_rows(result.stdout, 'Caching jobs:')}
    assert jobs[image['id']]['State'] == 'cached'
    assert jobs[image['id']]['Progress'] == '100% of 300.0 KiB'
    assert jobs[image['id']]['Last error'] == '-'


def test_list_shows_queued_jobs(stalled_node, manage):
    image = stalled_node.create_active_image(os.urandom(10 * KIB))
    run = node_manage(manage, stalled_node)
    assert_ok(run('queue', image['id']))
    result = run('list')
    assert_ok(result)
    jobs = {r['Image ID']: r for r in table_rows(result.stdout, 'Caching jobs:')}
    assert jobs[image['id']]['State'] == 'queued'
    assert jobs[image['id']]['Attempts'] == '0'


def test_delete_removes_the_image_from_the_cache(cache_node, manage):
    image = cache_node.create_active_image(os.urandom(50 * KIB))
    run = node_manage(manage, cache_node)
    assert_ok(run('queue', image['id'], '--wait'))
    assert image['id'] in cached_sizes(cache_node)
    result = run('delete', image['id'])
    assert_ok(result)
    assert result.stdout.strip() == 'Deleted image %s from the cache and the queue' % image['id']
    assert image['id'] not in cached_sizes(cache_node)
    assert job(cache_node, image['id']) is None


def test_delete_of_an_unknown_image_fails_with_the_404_message(cache_node, manage):
    unknown = str(uuid.uuid4())
    result = node_manage(manage, cache_node)('delete', unknown)
    assert_fails(result)
    assert 'cannot delete image %s: HTTP 404 Not Found' % unknown in result.stderr


# -- clear ---------------------------------------------------------------------------------


def _cached_and_queued(node, run):
    """One image cached (by a download) and one queued, on the stalled node."""
    cached = node.create_active_image(os.urandom(20 * KIB))
    assert node.request('GET', cached['file']).status_code == 200
    helpers.wait_for(lambda: cached['id'] in cached_sizes(node), 'the download to fill the cache')
    queued = node.create_active_image(os.urandom(20 * KIB))
    assert_ok(run('queue', queued['id']))
    assert queued['id'] in cache_state(node)['queued_images']
    return cached['id'], queued['id']


@pytest.mark.parametrize('args, message, cache_cleared, queue_cleared', [
    ((), 'Cleared the cache and the queue', True, True),
    (('--target', 'both'), 'Cleared the cache and the queue', True, True),
    (('--target', 'cache'), 'Cleared the cache', True, False),
    (('--target', 'queue'), 'Cleared the queue', False, True),
])
def test_clear(stalled_node, manage, args, message, cache_cleared, queue_cleared):
    run = node_manage(manage, stalled_node)
    cached, queued = _cached_and_queued(stalled_node, run)
    result = run('clear', *args)
    assert_ok(result)
    assert result.stdout.strip() == message
    state = cache_state(stalled_node)
    in_cache = {e['image_id'] for e in state['cached_images']}
    assert (cached not in in_cache) == cache_cleared
    assert (queued not in state['queued_images']) == queue_cleared


def test_clear_with_an_unknown_target_is_a_usage_error(cache_node, manage):
    result = node_manage(manage, cache_node)('clear', '--target', 'everything')
    assert_fails(result, code=2)
    assert "invalid choice: 'everything'" in result.stderr


# -- prune, clean --------------------------------------------------------------------------


def test_prune_prints_what_it_evicted(sqlite_node_factory, manage):
    # 2 x 400 kB fit in 1 MB; prune evicts down to the 500 kB low watermark.
    node = sqlite_node_factory({'cache': {'max_size': 1000000, 'low_watermark': 0.5}})
    run = node_manage(manage, node)
    images = [node.create_active_image(os.urandom(400000))['id'] for _ in range(2)]
    assert_ok(run('queue', *images, '--wait'))
    assert set(cached_sizes(node)) == set(images)
    result = run('prune')
    assert_ok(result)
    assert result.stdout.strip() == 'Pruned 1 file(s), 400000 byte(s)'
    assert len(cached_sizes(node)) == 1
    again = run('prune')
    assert_ok(again)
    assert again.stdout.strip() == 'Pruned 0 file(s), 0 byte(s)'


def test_clean_prints_what_it_removed(cache_node, manage):
    image = cache_node.create_active_image(os.urandom(33 * KIB))
    corrupt_store_data(cache_node, image['id'])
    assert cache_node.request('PUT', '/v2/cache/%s' % image['id']).status_code == 202
    helpers.wait_for(lambda: (job(cache_node, image['id']) or {}).get('state') == 'failed',
                     'the caching job to fail')
    invalid_dir = os.path.join(cache_node.cache_dir, 'invalid')
    debris = [os.path.getsize(os.path.join(invalid_dir, n)) for n in os.listdir(invalid_dir)]
    assert debris, 'the failed fill left its data in invalid/'
    result = node_manage(manage, cache_node)('clean')
    assert_ok(result)
    assert result.stdout.strip() == 'Cleaned %d file(s), %d byte(s)' % (len(debris), sum(debris))
    assert os.listdir(invalid_dir) == []


# -- authentication, node URL, errors ------------------------------------------------------


def test_token_comes_from_os_auth_token(cache_node, manage):
    run = node_manage(manage, cache_node)
    assert_ok(run('list', token=None, env={'OS_AUTH_TOKEN': 'admin'}))
    refused = run('list', token=None, env={'OS_AUTH_TOKEN': 'member-project'})
    assert_fails(refused)
    assert 'HTTP 403 Forbidden: Policy does not allow cache_list' in refused.stderr
    # The option wins over the environment.
    assert_ok(run('list', token='admin', env={'OS_AUTH_TOKEN': 'member-project'}))
    anonymous = run('list', token=None)
    assert_fails(anonymous)
    assert 'HTTP 401' in anonymous.stderr


def test_url_comes_from_the_environment(cache_node, manage):
    dead = 'http://127.0.0.1:%d' % closed_port()
    assert_ok(manage('list', env={'GLANCE_CACHE_URL': cache_node.url}))
    # OS_IMAGE_URL often names the versioned endpoint.
    assert_ok(manage('list', env={'OS_IMAGE_URL': cache_node.url + '/v2/'}))
    assert_ok(manage('list', env={'GLANCE_CACHE_URL': cache_node.url, 'OS_IMAGE_URL': dead}))
    assert_ok(manage('list', url=cache_node.url, env={'GLANCE_CACHE_URL': dead}))
    missing = manage('list')
    assert_fails(missing, code=2)
    assert 'no node URL: pass --url or set GLANCE_CACHE_URL' in missing.stderr


def test_an_unreachable_node_is_reported(manage):
    url = 'http://127.0.0.1:%d' % closed_port()
    result = manage('list', url=url)
    assert_fails(result)
    assert 'cannot reach %s' % url in result.stderr


def test_help_lists_the_cache_commands_and_options(manage):
    result = manage('--help', token=None)
    assert_ok(result)
    for word in ('queue', 'list', 'delete', 'clear', 'prune', 'clean', 'db', '--url',
                 '--os-auth-token'):
        assert word in result.stdout
