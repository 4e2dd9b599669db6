"""The cache API (v2.14+) and its caching worker, over HTTP against real nodes.

Faults come from a real store: images whose location points at
``faulty_store.FaultyStore``, read by glance_store's http driver inside the
node. Nothing of glance-cache is mocked, and nothing waits a fixed time: each
test polls the API or the file system with a deadline (``helpers.wait_for``),
and where a test must show that something never happens it waits for a later
job to end instead (``drain``: with one worker thread, jobs run in order).
"""

import concurrent.futures
import contextlib
import hashlib
import os
import re
import signal
import threading
import time
import uuid

import pytest
import requests

from tests import helpers
from tests.functional import faulty_store
from tests.functional.faulty_store import CORRUPT, DROP, FAIL_503, OK, MiB, cut, hold, slow

ADMIN = {'X-Auth-Token': 'admin'}

# Quick retries so that failing jobs reach their end within a test.
RETRYING = {'max_attempts': '3', 'retry_delay': '0.05', 'retry_max_delay': '0.1'}


class ArrivalCounter(helpers.OpenCounter):
    """Counts files created in, or renamed into, a directory, by name.

    OpenCounter watches the inotify events in ``IN_OPEN``; these are
    IN_CREATE | IN_MOVED_TO instead. A fill writes under incomplete/ and
    renames into the cache directory once verified, so every arrival of an
    image id there is a commit.
    """

    IN_OPEN = 0x100 | 0x80


@pytest.fixture(scope='module')
def cache_node(tmp_path_factory):
    """A node shared by this module's tests that need no special options or restart.

    One worker thread, quick retries. Tests use only images they create, and
    release every held store request before they end.
    """
    workdir = tmp_path_factory.mktemp('cache-api')
    node = helpers.Node(workdir, 'sqlite:///%s' % (workdir / 'glance-cache.db'),
                        {'cache': dict(RETRYING, worker_threads='1')})
    node.start()
    yield node
    node.stop()


# -- helpers -----------------------------------------------------------------------


def cache_dir(node):
    return os.path.join(node.workdir, 'data', 'cache')


def committed(node):
    return {n for n in os.listdir(cache_dir(node)) if len(n) == 36}


def incomplete(node):
    return set(os.listdir(os.path.join(cache_dir(node), 'incomplete')))


def listing(node):
    resp = node.request('GET', '/v2/cache')
    assert resp.status_code == 200, resp.text
    return resp.json()


def cached_ids(node):
    return [e['image_id'] for e in listing(node)['cached_images']]


def job(node, image_id):
    """The job record of ``image_id``, or None (404)."""
    resp = node.request('GET', '/v2/cache/jobs/%s' % image_id)
    if resp.status_code == 404:
        return None
    assert resp.status_code == 200, resp.text
    return resp.json()


def put(node, image_id, token='admin'):
    resp = node.request('PUT', '/v2/cache/%s' % image_id, token=token)
    assert resp.status_code == 202, resp.text
    return resp


def wait_cached(node, image_id, timeout=30):
    helpers.wait_for(lambda: image_id in cached_ids(node), 'image %s to be cached' % image_id,
                     timeout=timeout)
    return job(node, image_id)


def wait_job(node, image_id, what, predicate, timeout=30):
    """Poll the job record of ``image_id`` until ``predicate(record)``; return it."""
    def check():
        record = job(node, image_id)
        return record if record is not None and predicate(record) else None
    return helpers.wait_for(check, 'job of %s: %s' % (image_id, what), timeout=timeout)


def wait_state(node, image_id, state, timeout=30):
    return wait_job(node, image_id, 'state %s' % state, lambda r: r['state'] == state,
                    timeout)


def wait_partly_done(node, image_id):
    """Wait until the fill of a held image has written its first 4 MiB read."""
    return wait_job(node, image_id, 'caching with bytes done',
                    lambda r: r['state'] == 'caching' and 0 < r['bytes_done'] < r['size'])


def drain(node):
    """Queue a small image and wait until it is cached.

    With one worker thread jobs run one at a time in queue order, so when
    this returns every job queued before has ended: a cancelled fill that was
    going to commit anyway would have done so.
    """
    sentinel = node.create_active_image(os.urandom(1024))
    put(node, sentinel['id'])
    wait_cached(node, sentinel['id'])


def http_image(node, store, size, plan):
    """An active image whose data the node reads from ``store``, served by ``plan``."""
    data = os.urandom(size)
    image = node.create_active_image(data)
    url = store.add(data, plan)
    faulty_store.point_image_at(node, image['id'], url)
    return image, store.image(url), data


def sha512_of(path):
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha512').hexdigest()


def assert_json_error(resp, code):
    assert resp.status_code == code, resp.text
    assert resp.headers['Content-Type'].startswith('application/json')
    assert resp.json()['error']['code'] == code


# -- queueing and listing ----------------------------------------------------------


def test_put_caches_image_and_repeat_put_reads_nothing(cache_node):
    data = os.urandom(3 * MiB + 5)
    image = cache_node.create_active_image(data)
    counter = helpers.OpenCounter(cache_node.store_dir)
    try:
        resp = put(cache_node, image['id'])
        assert resp.content == b''
        record = wait_cached(cache_node, image['id'])
        assert record['state'] == 'cached'
        assert record['attempts'] == 1
        assert record['bytes_done'] == record['size'] == len(data)
        assert record['last_error'] is None
        assert record['queued_at'] <= record['started_at'] <= record['finished_at']
        assert record['node']

        body = listing(cache_node)
        assert set(body) == {'cached_images', 'queued_images'}
        entry = next(e for e in body['cached_images'] if e['image_id'] == image['id'])
        assert set(entry) == {'image_id', 'hits', 'last_accessed', 'last_modified', 'size'}
        assert entry['size'] == len(data)
        assert isinstance(entry['last_modified'], float)
        assert image['id'] not in body['queued_images']

        put(cache_node, image['id'])
        drain(cache_node)
        assert counter.poll().get(image['id']) == 1, 'a repeated PUT read the store again'
        assert job(cache_node, image['id']) == record
    finally:
        counter.close()
    with open(os.path.join(cache_dir(cache_node), image['id']), 'rb') as f:
        assert f.read() == data
    assert cache_node.request('GET', image['file']).content == data


def test_concurrent_puts_of_one_image_read_store_once(cache_node):
    image = cache_node.create_active_image(os.urandom(4 * MiB))
    counter = helpers.OpenCounter(cache_node.store_dir)
    start = threading.Barrier(50)

    def put_in_own_session(_):
        with requests.Session() as session:
            start.wait(30)
            return session.put('%s/v2/cache/%s' % (cache_node.url, image['id']),
                               headers=ADMIN, timeout=60).status_code

    try:
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            codes = list(pool.map(put_in_own_session, range(50)))
        assert codes == [202] * 50
        wait_cached(cache_node, image['id'])
        drain(cache_node)
        assert counter.poll().get(image['id']) == 1
    finally:
        counter.close()


def test_put_error_codes(cache_node):
    assert_json_error(cache_node.request('PUT', '/v2/cache/%s' % uuid.uuid4()), 404)
    assert_json_error(cache_node.request('PUT', '/v2/cache/non-existing-image-id'), 404)
    queued = cache_node.create_image()
    assert_json_error(cache_node.request('PUT', '/v2/cache/%s' % queued['id']), 400)

    own = cache_node.create_active_image(b'project data', token='proj-a')
    resp = cache_node.request('PUT', '/v2/cache/%s' % own['id'], token='proj-a')
    assert_json_error(resp, 403)
    assert resp.json()['error']['title'] == 'Forbidden'
    # Another project's member may not even learn that the image exists.
    assert_json_error(cache_node.request('PUT', '/v2/cache/%s' % own['id'], token='proj-b'),
                      404)
    assert job(cache_node, own['id']) is None

    put(cache_node, own['id'])  # admin, another project's private image
    wait_cached(cache_node, own['id'])


def test_other_cache_calls_status_codes(cache_node):
    assert_json_error(cache_node.request('DELETE', '/v2/cache/%s' % uuid.uuid4()), 404)
    assert_json_error(cache_node.request('DELETE', '/v2/cache/not-a-uuid'), 404)
    resp = cache_node.request('DELETE', '/v2/cache',
                              headers={'x-image-cache-clear-target': 'everything'})
    assert_json_error(resp, 400)
    assert_json_error(cache_node.request('GET', '/v2/cache/jobs/%s' % uuid.uuid4()), 404)
    assert_json_error(cache_node.request('GET', '/v2/cache/jobs?state=bogus'), 400)
    assert_json_error(cache_node.request('GET', '/v2/cache', token='proj-a'), 403)
    for action in ('clean', 'prune'):
        resp = cache_node.request('POST', '/v2/cache/%s' % action)
        assert resp.status_code == 200, resp.text
        assert resp.headers['Content-Type'].startswith('application/json')
    assert set(resp.json()) == {'total_files_pruned', 'total_bytes_pruned'}


def test_policy_file_lets_owners_cache_their_own_images(tmp_path, sqlite_node_factory):
    path = helpers.policy_file(str(tmp_path / 'policy.yaml'), {
        'cache_image': 'role:admin or (role:member and project_id:%(owner)s)'})
    node = sqlite_node_factory({'oslo_policy': {'policy_file': path}})
    own = node.create_active_image(b'mine', token='proj-a')
    private = node.create_active_image(b'theirs', token='proj-b')
    community = node.create_active_image(b'shared', token='proj-b', visibility='community')

    put(node, own['id'], token='proj-a')
    wait_cached(node, own['id'])
    assert_json_error(node.request('PUT', '/v2/cache/%s' % community['id'], token='proj-a'),
                      403)
    assert_json_error(node.request('PUT', '/v2/cache/%s' % private['id'], token='proj-a'),
                      404)
    assert job(node, community['id']) is None and job(node, private['id']) is None


# -- faults of the store -----------------------------------------------------------


def test_transient_store_failures_are_retried(cache_node, store):
    image, served, _ = http_image(cache_node, store, MiB, [FAIL_503, DROP, OK])
    put(cache_node, image['id'])
    record = wait_cached(cache_node, image['id'])
    assert record['attempts'] == 3
    assert record['last_error'] is None
    assert served.requests == 3


def test_store_failing_every_time_fails_the_job(cache_node, store):
    # A body cut short is transient too: it is retried, not taken as bad data.
    image, served, _ = http_image(cache_node, store, 2 * MiB, [FAIL_503, cut(MiB)])
    put(cache_node, image['id'])
    record = wait_state(cache_node, image['id'], 'failed')
    assert record['attempts'] == 3  # max_attempts
    assert 'Connection broken' in record['last_error']
    assert record['finished_at'] is not None
    assert served.requests == 3
    body = listing(cache_node)
    assert image['id'] not in body['queued_images']
    assert image['id'] not in [e['image_id'] for e in body['cached_images']]
    failed = cache_node.request('GET', '/v2/cache/jobs?state=failed').json()['jobs']
    assert image['id'] in [j['image_id'] for j in failed]


# Under 8 MiB the fill hashes in its own thread, from 8 MiB in digest processes.
@pytest.mark.parametrize('size', [2 * MiB, 12 * MiB])
def test_data_failing_verification_is_never_cached(cache_node, store, size):
    image, served, data = http_image(cache_node, store, size, [CORRUPT])
    put(cache_node, image['id'])
    record = wait_state(cache_node, image['id'], 'failed')
    assert record['attempts'] == 1, 'bad data is not retried'
    assert 'checksum mismatch' in record['last_error']
    assert served.requests == 1
    invalid = os.path.join(cache_dir(cache_node), 'invalid')
    assert image['id'] in os.listdir(invalid)
    assert image['id'] not in committed(cache_node)
    assert image['id'] not in cached_ids(cache_node)

    # A download fills from the store again: the response ends short of its
    # Content-Length, which the client reports, instead of looking complete.
    with pytest.raises(requests.RequestException):
        requests.get(cache_node.url + image['file'], headers=ADMIN, timeout=60)
    assert served.requests == 2
    assert image['id'] not in committed(cache_node)
    assert image['id'] not in cached_ids(cache_node)


def _worker_pid(node):
    return int(re.findall(r"Process (\d+) is this node's caching worker", node.log(last=None))[-1])


def _fill_placement(node):
    """(the caching worker's process, the CPUs of its background fills, every CPU)."""
    # The latest start's lines (the node may have been restarted).
    log = node.log(last=None)
    placements = re.findall(r'background fills run on CPU\(s\) ([\d,]+), leaving [\d,]+ '
                            r'to requests', log)
    assert placements, 'the worker says where fills run'
    fill_cpus = frozenset(int(cpu) for cpu in placements[-1].split(','))
    worker = _worker_pid(node)
    every_cpu = frozenset(os.sched_getaffinity(worker))
    assert fill_cpus < every_cpu
    return worker, fill_cpus, every_cpu


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason='needs two CPUs')
def test_a_background_fill_keeps_off_the_cpu_left_to_requests(cache_node, store):
    worker, fill_cpus, every_cpu = _fill_placement(cache_node)
    image, served, data = http_image(cache_node, store, 12 * MiB, [hold(9 * MiB)])
    try:
        put(cache_node, image['id'])
        wait_partly_done(cache_node, image['id'])
        digesters = helpers.wait_for(lambda: helpers.digest_processes(worker),
                                     'the digest processes')
        assert [os.sched_getaffinity(pid) for pid in digesters] == [fill_cpus] * 2
        # A short fill leaves the process's other threads where they were.
        assert os.sched_getaffinity(worker) == every_cpu
        # A client downloading the image waits for the fill: it may use every CPU.
        download = requests.get(cache_node.url + image['file'], headers=ADMIN, stream=True,
                                timeout=60)
        body = download.iter_content(MiB)
        first = next(body)
        assert [os.sched_getaffinity(pid) for pid in digesters] == [every_cpu] * 2
    finally:
        served.release()
    assert first + b''.join(body) == data
    wait_cached(cache_node, image['id'])


def _thread_cpus(pid):
    """{thread id: its CPUs} of process ``pid``."""
    cpus_of = {}
    for name in os.listdir('/proc/%d/task' % pid):
        try:
            cpus_of[int(name)] = frozenset(os.sched_getaffinity(int(name)))
        except ProcessLookupError:
            pass  # ended meanwhile
    return cpus_of


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason='needs two CPUs')
def test_a_long_background_fill_keeps_the_request_threads_off_its_cpu(cache_node, store):
    worker, fill_cpus, every_cpu = _fill_placement(cache_node)
    request_cpus = every_cpu - fill_cpus
    # 32 MiB and more is a long fill (cpus.MOVE_REQUESTS_FROM).
    image, served, data = http_image(cache_node, store, 33 * MiB, [hold(9 * MiB)])
    try:
        put(cache_node, image['id'])
        wait_partly_done(cache_node, image['id'])
        during = _thread_cpus(worker)
        # The fill's threads on its CPU, every other thread (the process's
        # first one, the request threads) on the rest.
        assert during[worker] == request_cpus
        assert set(during.values()) == {fill_cpus, request_cpus}
        # A request is served meanwhile, from a thread kept off the fill's CPU.
        assert cache_node.request('GET', '/v2/cache').status_code == 200
        assert set(_thread_cpus(worker).values()) == {fill_cpus, request_cpus}
    finally:
        served.release()
    wait_cached(cache_node, image['id'])
    # Once it ended every thread may use every CPU again.
    helpers.wait_for(lambda: set(_thread_cpus(worker).values()) == {every_cpu},
                     'every thread of the worker on every CPU')


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason='needs two CPUs')
def test_a_long_background_fill_moves_the_other_server_process_too(sqlite_node_factory, store):
    node = sqlite_node_factory({'DEFAULT': {'workers': '2'}})
    worker, fill_cpus, every_cpu = _fill_placement(node)
    request_cpus = every_cpu - fill_cpus
    helpers.wait_for(lambda: len(helpers.child_processes(node.proc.pid)) == 2,
                     'two server processes')
    other, = set(helpers.child_processes(node.proc.pid)) - {worker}
    image, served, data = http_image(node, store, 33 * MiB, [hold(9 * MiB)])
    try:
        put(node, image['id'])
        wait_partly_done(node, image['id'])
        assert set(_thread_cpus(other).values()) == {request_cpus}
        assert _thread_cpus(worker)[worker] == request_cpus
    finally:
        served.release()
    wait_cached(node, image['id'])
    helpers.wait_for(lambda: set(_thread_cpus(other).values()) == {every_cpu}
                     and set(_thread_cpus(worker).values()) == {every_cpu},
                     'every thread of both server processes on every CPU')


def test_progress_is_visible_while_caching(cache_node, store):
    image, served, data = http_image(cache_node, store, 6 * MiB, [hold(5 * MiB)])
    try:
        put(cache_node, image['id'])
        record = wait_partly_done(cache_node, image['id'])
        assert record['bytes_done'] == 4 * MiB  # the http driver reads 4 MiB at a time
        assert record['size'] == len(data)
        assert record['started_at'] is not None and record['finished_at'] is None
        caching = cache_node.request('GET', '/v2/cache/jobs?state=caching').json()['jobs']
        assert [j['image_id'] for j in caching] == [image['id']]
        assert image['id'] in listing(cache_node)['queued_images']
        assert image['id'] not in cached_ids(cache_node)
    finally:
        served.release()
    record = wait_cached(cache_node, image['id'])
    assert record['bytes_done'] == len(data) and record['attempts'] == 1


def test_stalled_fetch_is_aborted_and_retried(sqlite_node_factory, store):
    node = sqlite_node_factory({'cache': dict(RETRYING, fetch_stall_timeout='0.5')})
    image, served, data = http_image(node, store, 3 * MiB, [hold(MiB), OK])
    try:
        put(node, image['id'])
        record = wait_cached(node, image['id'])
    finally:
        served.release()
    assert record['attempts'] == 2
    assert served.requests == 2
    assert sha512_of(os.path.join(cache_dir(node), image['id'])) == image['os_hash_value']
    assert 'no data for 0.5 s' in node.log()


@contextlib.contextmanager
def _digests_stopped(node, image, served):
    """Queue ``image`` (12 MiB, its store answer held after 9 MiB) and stop its
    fill's digest processes (SIGSTOP), as a node whose CPUs are busy with
    requests would leave them waiting; then release the store and wait until
    the fill has every byte. Yields their pids; continued (SIGCONT) after."""
    worker = _worker_pid(node)
    digesters = []
    try:
        put(node, image['id'])
        wait_partly_done(node, image['id'])
        digesters = helpers.wait_for(lambda: helpers.digest_processes(worker),
                                     'the digest processes')
        assert len(digesters) == 2
        for pid in digesters:
            os.kill(pid, signal.SIGSTOP)
        served.release()
        wait_job(node, image['id'], 'every byte received',
                 lambda r: r['bytes_done'] == r['size'])
        yield digesters
    finally:
        served.release()
        for pid in digesters:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_digests_waiting_past_the_stall_timeout_do_not_abort_the_fill(sqlite_node_factory,
                                                                     store):
    node = sqlite_node_factory({'cache': dict(RETRYING, fetch_stall_timeout='0.5')})
    image, served, data = http_image(node, store, 12 * MiB, [hold(9 * MiB)])
    with _digests_stopped(node, image, served):
        # What is tested is time passing: four stall timeouts with no byte
        # received, every byte being in already.
        time.sleep(2.0)
        record = job(node, image['id'])
        assert record['state'] == 'caching' and record['attempts'] == 1, record
    record = wait_cached(node, image['id'])
    assert record['attempts'] == 1
    assert served.requests == 1
    assert 'no data for' not in node.log()
    assert sha512_of(os.path.join(cache_dir(node), image['id'])) == image['os_hash_value']


def test_delete_stops_a_fill_waiting_for_its_digests(cache_node, store):
    image, served, _ = http_image(cache_node, store, 12 * MiB, [hold(9 * MiB)])
    worker = _worker_pid(cache_node)
    with _digests_stopped(cache_node, image, served):
        resp = cache_node.request('DELETE', '/v2/cache/%s' % image['id'])
        assert resp.status_code == 204, resp.text
        # The fill stops them rather than waiting for them, and the worker
        # goes on to the next job while they would still be stopped.
        helpers.wait_for(lambda: not helpers.digest_processes(worker),
                         'the digest processes to end')
        drain(cache_node)
    assert_never_cached(cache_node, image['id'])
    assert not incomplete(cache_node)
    assert served.requests == 1


# -- cancelling --------------------------------------------------------------------


def test_delete_cancels_a_running_fill(cache_node, store):
    image, served, _ = http_image(cache_node, store, 6 * MiB, [hold(5 * MiB)])
    try:
        put(cache_node, image['id'])
        wait_partly_done(cache_node, image['id'])
        assert image['id'] in incomplete(cache_node)
        resp = cache_node.request('DELETE', '/v2/cache/%s' % image['id'])
        assert resp.status_code == 204, resp.text
        assert job(cache_node, image['id']) is None
    finally:
        served.release()
    helpers.wait_for(lambda: not incomplete(cache_node), 'the incomplete file to go')
    assert_never_cached(cache_node, image['id'])
    assert served.requests == 1


def assert_never_cached(node, image_id):
    """Once the queue has drained, the image is nowhere: cache, queue, disk or jobs."""
    drain(node)
    assert image_id not in cached_ids(node)
    assert image_id not in listing(node)['queued_images']
    assert image_id not in committed(node)
    assert job(node, image_id) is None


def _put_then_delete(node, image, session):
    """PUT, then at once DELETE, ``image`` through ``session``; check that it is
    not cached once the next job has run."""
    url = '%s/v2/cache/%s' % (node.url, image['id'])
    assert session.put(url, headers=ADMIN, timeout=60).status_code == 202
    resp = session.delete(url, headers=ADMIN, timeout=60)
    assert resp.status_code == 204, resp.text
    drain(node)
    assert image['id'] not in cached_ids(node)
    assert image['id'] not in committed(node)
    assert image['id'] not in incomplete(node)
    assert job(node, image['id']) is None


def _served_by(node, resp):
    """The pid of the node's process that answered ``resp``, from its request log."""
    line = re.compile(r'^\S+ \S+ (\d+) INFO glance_cache\.deploy \[\S+ %s '
                      % re.escape(resp.headers['x-openstack-request-id']), re.M)
    return helpers.wait_for(lambda: line.search(node.log()), 'the request log').group(1)


def _session_accepted(node, wanted, what):
    """A keep-alive session whose connection a server process with ``wanted(pid)`` accepted.

    Which process accepts a connection is a race, which one still starting
    (or busy) loses every time: new connections are tried until a deadline.
    """
    def connect():
        session = requests.Session()
        resp = session.get(node.url + '/v2/cache', headers=ADMIN, timeout=60)
        if wanted(_served_by(node, resp)):
            return session
        session.close()
        return None

    return helpers.wait_for(connect, what, timeout=60, interval=0.01)


def _session_not_served_by(node, pid):
    """A keep-alive session whose connection another server process accepted."""
    return _session_accepted(node, lambda served: served != pid,
                             'a connection accepted by a process other than %s' % pid)


def _session_served_by(node, pid):
    return _session_accepted(node, lambda served: served == pid,
                             'a connection accepted by process %s' % pid)


def test_put_then_immediate_delete_is_never_cached(cache_node):
    image = cache_node.create_active_image(os.urandom(MiB) * 64)
    for _ in range(3):
        _put_then_delete(cache_node, image, cache_node.session)


def test_delete_served_by_another_process_is_never_cached(sqlite_node_factory, store):
    """With two server processes a DELETE may reach the one that is not filling:
    it cannot cancel the fill, and the fill may end before the filler's next
    look at the job (every 0.5 s). The store holds each fill until the DELETE
    is answered, then lets it end at once. Not even for a moment may the
    image be committed (and so listed) after the DELETE."""
    node = sqlite_node_factory({'DEFAULT': {'workers': '2'}})
    drainer = helpers.wait_for(
        lambda: re.search(r"Process (\d+) is this node's caching worker", node.log()),
        'a caching worker').group(1)
    arrivals = ArrivalCounter(cache_dir(node))
    with _session_not_served_by(node, drainer) as session, contextlib.closing(arrivals):
        for _ in range(3):
            image, served, _ = http_image(node, store, 2 * MiB, [hold(MiB)])
            url = '%s/v2/cache/%s' % (node.url, image['id'])
            try:
                assert session.put(url, headers=ADMIN, timeout=60).status_code == 202
                helpers.wait_for(served.holding.is_set, 'the fill to start')
                resp = session.delete(url, headers=ADMIN, timeout=60)
                assert resp.status_code == 204, resp.text
            finally:
                served.release()
            drain(node)
            assert image['id'] not in arrivals.poll(), 'committed after the DELETE'
            assert image['id'] not in cached_ids(node)
            assert job(node, image['id']) is None


def test_listing_shows_what_another_process_changed(sqlite_node_factory):
    """Each process reuses its last encoded listing until an entry changes; a
    change made by the node's other process counts too."""
    node = sqlite_node_factory({'DEFAULT': {'workers': '2'}})
    drainer = helpers.wait_for(
        lambda: re.search(r"Process (\d+) is this node's caching worker", node.log()),
        'a caching worker').group(1)
    data = os.urandom(4096)
    image = node.create_active_image(data)
    with _session_not_served_by(node, drainer) as lister, \
            _session_served_by(node, drainer) as changer:
        def entries():
            resp = lister.get(node.url + '/v2/cache', headers=ADMIN, timeout=60)
            assert resp.status_code == 200, resp.text
            return {e['image_id']: e for e in resp.json()['cached_images']}

        assert image['id'] not in entries()
        put(node, image['id'])
        wait_cached(node, image['id'])
        assert entries()[image['id']]['hits'] == 0
        for hits in (1, 2):
            resp = changer.get('%s/v2/images/%s/file' % (node.url, image['id']),
                               headers=ADMIN, timeout=60)
            assert resp.content == data
            assert entries()[image['id']]['hits'] == hits
            assert entries()[image['id']]['hits'] == hits   # and again, reused
        resp = changer.delete('%s/v2/cache/%s' % (node.url, image['id']), headers=ADMIN,
                              timeout=60)
        assert resp.status_code == 204, resp.text
        assert image['id'] not in entries()


def test_jobs_listing_shows_a_job_another_process_finished_again(sqlite_node_factory):
    """Each process keeps the finished jobs it listed until a record is written
    again; a job that the node's other process removed and ran anew while this
    one was not looking shows as it now is, not as it was kept."""
    node = sqlite_node_factory({'DEFAULT': {'workers': '2'}})
    drainer = helpers.wait_for(
        lambda: re.search(r"Process (\d+) is this node's caching worker", node.log()),
        'a caching worker').group(1)
    image = node.create_active_image(os.urandom(4096))

    def finished():
        put(node, image['id'])
        return wait_job(node, image['id'], 'the job to finish',
                        lambda record: record['finished_at'] is not None)

    with _session_not_served_by(node, drainer) as lister:
        def listed():
            resp = lister.get(node.url + '/v2/cache/jobs', headers=ADMIN, timeout=60)
            assert resp.status_code == 200, resp.text
            return [j for j in resp.json()['jobs'] if j['image_id'] == image['id']]

        before = finished()
        for _ in range(3):
            assert listed() == [before]
            assert listed() == [before]   # and again, from what the process kept
            resp = node.request('DELETE', '/v2/cache/%s' % image['id'])
            assert resp.status_code == 204, resp.text
            again = finished()
            assert again['queued_at'] > before['queued_at']
            before = again
        assert listed() == [before]


def test_deleting_the_image_cancels_its_fill(cache_node, store):
    image, served, _ = http_image(cache_node, store, 6 * MiB, [hold(5 * MiB)])
    try:
        put(cache_node, image['id'])
        wait_partly_done(cache_node, image['id'])
        resp = cache_node.request('DELETE', '/v2/images/%s' % image['id'])
        assert resp.status_code == 204, resp.text
    finally:
        served.release()
    helpers.wait_for(lambda: image['id'] not in incomplete(cache_node),
                     'the incomplete file to go')
    assert_never_cached(cache_node, image['id'])
    assert served.requests == 1


def _clear(node, target):
    resp = node.request('DELETE', '/v2/cache', headers={'x-image-cache-clear-target': target})
    assert resp.status_code == 204, resp.text


def _cached_running_and_waiting(node, store):
    """A cached image, a held fill and a job waiting behind it: their ids and the hold."""
    done = node.create_active_image(os.urandom(1024))
    put(node, done['id'])
    wait_cached(node, done['id'])
    running, served, _ = http_image(node, store, 6 * MiB, [hold(5 * MiB), OK])
    put(node, running['id'])
    wait_partly_done(node, running['id'])
    waiting = node.create_active_image(os.urandom(1024))
    put(node, waiting['id'])
    assert job(node, waiting['id'])['state'] == 'queued'
    return done['id'], running['id'], waiting['id'], served


def test_clear_each_target(cache_node, store):
    done, running, waiting, served = _cached_running_and_waiting(cache_node, store)
    try:
        # queue: only the waiting job goes.
        _clear(cache_node, 'queue')
        assert job(cache_node, waiting) is None
        assert job(cache_node, running)['state'] == 'caching'
        assert listing(cache_node)['queued_images'] == [running]
        assert done in cached_ids(cache_node)

        # cache: only committed entries go; the running fill goes on to the end.
        _clear(cache_node, 'cache')
        assert cached_ids(cache_node) == []
        assert not committed(cache_node)
        assert job(cache_node, done) is None
        assert job(cache_node, running)['state'] == 'caching'
    finally:
        served.release()
    wait_cached(cache_node, running)

    # both (empty header): everything, and the running fill is cancelled.
    done, running, waiting, served = _cached_running_and_waiting(cache_node, store)
    try:
        _clear(cache_node, '')
        assert listing(cache_node) == {'cached_images': [], 'queued_images': []}
        assert cache_node.request('GET', '/v2/cache/jobs').json()['jobs'] == []
    finally:
        served.release()
    helpers.wait_for(lambda: running not in incomplete(cache_node), 'the incomplete file to go')
    drain(cache_node)
    assert running not in cached_ids(cache_node) and waiting not in cached_ids(cache_node)
    assert not committed(cache_node) - set(cached_ids(cache_node))
    assert served.requests == 1


# -- restarts ----------------------------------------------------------------------


def test_fill_resumes_after_kill_9(sqlite_node_factory, store):
    node = sqlite_node_factory({'cache': RETRYING})
    image, served, data = http_image(node, store, 6 * MiB, [hold(5 * MiB), OK])
    arrivals = ArrivalCounter(cache_dir(node))
    try:
        put(node, image['id'])
        wait_partly_done(node, image['id'])
        partial = os.path.join(cache_dir(node), 'incomplete', image['id'])
        assert os.path.getsize(partial) == 4 * MiB
        os.killpg(node.proc.pid, signal.SIGKILL)
        node.proc.wait(30)
        served.release()  # the held request now writes into a closed connection
        assert image['id'] not in committed(node)

        node = sqlite_node_factory({'cache': RETRYING})  # same workdir, database, cache
        record = wait_cached(node, image['id'])
        assert arrivals.poll().get(image['id']) == 1, 'only the verified file was committed'
    finally:
        arrivals.close()
    assert record['attempts'] == 1, 'an attempt cut short by a crash does not count'
    assert served.requests == 2
    assert sha512_of(os.path.join(cache_dir(node), image['id'])) == image['os_hash_value']
    assert node.request('GET', image['file']).content == data


def test_sigterm_mid_fill_exits_promptly_and_fill_resumes(sqlite_node_factory, store):
    node = sqlite_node_factory({'cache': RETRYING})
    image, served, _ = http_image(node, store, 6 * MiB, [hold(5 * MiB), OK])
    try:
        put(node, image['id'])
        wait_partly_done(node, image['id'])
        node.session.close()  # an idle keep-alive connection would hold gunicorn
        started = time.monotonic()
        os.killpg(node.proc.pid, signal.SIGTERM)
        node.proc.wait(30)
        # gunicorn's graceful timeout is 30 s; a fill blocked in a store read must not
        # make the node wait for it.
        assert time.monotonic() - started < 10
    finally:
        served.release()
    assert image['id'] not in committed(node)

    node = sqlite_node_factory({'cache': RETRYING})
    record = wait_cached(node, image['id'])
    assert record['attempts'] == 1
    assert served.requests == 2
    assert sha512_of(os.path.join(cache_dir(node), image['id'])) == image['os_hash_value']


def test_queued_images_survive_restart(sqlite_node_factory, store):
    options = {'cache': dict(RETRYING, worker_threads='1')}
    node = sqlite_node_factory(options)
    # 6 MiB at 1 MiB/s: still caching when the node stops; served at once after.
    first, served, _ = http_image(node, store, 6 * MiB, [slow(MiB), OK])
    others = [node.create_active_image(os.urandom(100_000)) for _ in range(2)]
    ids = [first['id']] + [i['id'] for i in others]
    for image_id in ids:
        put(node, image_id)
    helpers.wait_for(lambda: served.requests == 1, 'the first image to be fetched')
    body = listing(node)
    assert body['cached_images'] == [] and sorted(body['queued_images']) == sorted(ids)
    assert [job(node, i)['state'] for i in ids] == ['caching', 'queued', 'queued']
    node.stop()

    node = sqlite_node_factory(options)
    for image_id in ids:
        wait_cached(node, image_id)
    assert listing(node)['queued_images'] == []
    assert served.requests == 2


# -- versions and configuration ----------------------------------------------------


def test_versions_list_the_cache_api_when_enabled(cache_node):
    versions = cache_node.request('GET', '/versions', token=None).json()['versions']
    status = {v['id']: v['status'] for v in versions}
    assert status['v2.14'] == 'SUPPORTED'
    assert status['v2.18'] == 'CURRENT'
    assert versions[0]['id'] == 'v2.18'
    assert list(status.values()).count('CURRENT') == 1


def test_cache_api_absent_when_disabled(sqlite_node_factory):
    node = sqlite_node_factory({'cache': {'enabled': 'false'}})
    ids = [v['id'] for v in node.request('GET', '/versions', token=None).json()['versions']]
    assert not {'v2.14', 'v2.15', 'v2.16', 'v2.17', 'v2.18'} & set(ids)
    image = node.create_active_image(b'data')
    for method, path in (('GET', '/v2/cache'), ('PUT', '/v2/cache/%s' % image['id']),
                         ('GET', '/v2/cache/jobs'), ('DELETE', '/v2/cache')):
        assert_json_error(node.request(method, path), 404)


def test_removed_prefetcher_option_is_one_warning(sqlite_node_factory):
    node = sqlite_node_factory({'DEFAULT': {'cache_prefetcher_interval': '300'}})
    warnings = [line for line in node.log().splitlines()
                if 'cache_prefetcher_interval' in line]
    assert len(warnings) == 1, warnings
    assert 'WARNING' in warnings[0] and 'immediate caching' in warnings[0]
    image = node.create_active_image(b'still caches')
    put(node, image['id'])
    wait_cached(node, image['id'])


def test_range_of_uncached_image_from_a_store_without_offsets(cache_node, store):
    # glance_store's http driver cannot start mid-image: the node reads from
    # the start and skips, rather than failing the request.
    image, _served, data = http_image(cache_node, store, 300_000, [OK])
    resp = cache_node.request('GET', image['file'], headers={'Range': 'bytes=100000-100009'})
    assert resp.status_code == 206
    assert resp.content == data[100000:100010]


def _done_records(node):
    return {n for n in os.listdir(os.path.join(cache_dir(node), 'queue', 'done')) if len(n) == 36}


def _job_ids(node):
    resp = node.request('GET', '/v2/cache/jobs')
    assert resp.status_code == 200, resp.text
    return {j['image_id'] for j in resp.json()['jobs']}


def test_an_evicted_image_leaves_no_job_record_behind(sqlite_node_factory):
    """The job records of a node that caches and evicts for ever do not pile up."""
    node = sqlite_node_factory({'cache': {'max_size': str(3 * 100_000),
                                          'low_watermark': '0.5'}})
    images = [node.create_active_image(os.urandom(100_000))['id'] for _ in range(6)]
    for image_id in images:
        put(node, image_id)
        wait_state(node, image_id, 'cached')
    cached = set(cached_ids(node))
    assert len(cached) < len(images), 'nothing was evicted'
    assert _job_ids(node) == cached
    assert _done_records(node) == cached

    # A record left by a node that died between an eviction and the word of
    # it (or by an older version) goes at the next start.
    node.stop()
    survivor = sorted(cached)[0]
    stale = next(i for i in images if i not in cached)
    with open(os.path.join(cache_dir(node), 'queue', 'done', survivor)) as f:
        record = f.read().replace(survivor, stale)
    with open(os.path.join(cache_dir(node), 'queue', 'done', stale), 'w') as f:
        f.write(record)
    node.start()
    helpers.wait_for(lambda: stale not in _done_records(node), 'the stale record to go')
    assert _job_ids(node) == set(cached_ids(node)) == cached


def test_each_state_query_lists_what_the_full_listing_has_in_that_state(cache_node, store):
    cached = cache_node.create_active_image(b'c' * 5000)['id']
    put(cache_node, cached)
    wait_cached(cache_node, cached)
    failed, _, _ = http_image(cache_node, store, MiB, [CORRUPT])
    put(cache_node, failed['id'])
    wait_state(cache_node, failed['id'], 'failed')
    held, served, _ = http_image(cache_node, store, 6 * MiB, [hold(5 * MiB)])
    queued = cache_node.create_active_image(b'q' * 5000)['id']
    try:
        put(cache_node, held['id'])
        wait_partly_done(cache_node, held['id'])
        put(cache_node, queued)   # behind the held fill: one worker thread
        jobs = cache_node.request('GET', '/v2/cache/jobs').json()['jobs']
        by_state = {s: cache_node.request('GET', '/v2/cache/jobs?state=%s' % s).json()['jobs']
                    for s in ('queued', 'caching', 'cached', 'failed')}
    finally:
        served.release()
    for state, listed in by_state.items():
        assert listed == [j for j in jobs if j['state'] == state], state
    mine = {j['image_id']: j['state'] for j in jobs}
    assert (mine[cached], mine[failed['id']], mine[held['id']], mine[queued]) == (
        'cached', 'failed', 'caching', 'queued')
    wait_cached(cache_node, queued)
