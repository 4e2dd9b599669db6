"""Latency and throughput of the cache API on one node.

    .venv/bin/python bench/cache_api.py [--small 100] [--many 1000 [--many-rounds 1]]
                                        [--listing 10000] [--fill-mib 2048 [--busy-rounds 1]]
                                        [--skip PART ...]
                                        [--glance VENV [--glance-listing 1000]]

Parts, each on a fresh node:

small    100 images of 64 KiB queued one after another: time for PUT
         /v2/cache/{id} to be answered, and from the PUT to the image being
         cached (the job record's finished_at, the moment the entry is
         committed and listed), fsyncs on.
busy     GET /v2/cache latency on an idle node (as long as a fill alone
         takes and 3 s at least, half before and half after the fill that is
         timed with the listing polled), while md5sum and sha512sum
         hash the image in other processes (the CPU of a fill's digests,
         without the node), while cp copies it in a process bound to the
         CPU a background fill gets (a fill's copying, without the node),
         while a loop that does nothing spins on that CPU (the fill's CPU
         taken, with no I/O at all), and while a --fill-mib fill runs; and the
         fill's time alone and while GET /v2/cache is polled back to back,
         against the same for the fill's work without the node (cp, and
         md5sum and sha512sum at the digests' niceness, bound to that CPU).
         On three nodes: with the defaults (background fills keep a CPU free
         for requests, and the kernel copies the image from the file store),
         with [cache] kernel_copy = false (the fill's bytes pass through the
         server process) and with fill_cpu_reserve = 0 (fills on every CPU);
         with --busy-rounds N, N fills alone and N polled on each, the nodes
         taking turns, and the ratios of the medians.
many     --many images queued from 4 client threads: time until every PUT
         was answered, and until all are cached, from the first PUT; with
         one server process (the default) and with one per core. The
         references: as many GET /versions sent the same way, and as many
         GET to gunicorn alone, with the node's settings and an application
         that does nothing (bench/_bare.py: what the server's handing of
         each request between its threads costs, without the node); and
         the same bursts on a second node with [cache] burst_max_hold = 0
         (every job started at once, among the PUTs still arriving), its
         rounds taken in turns with the first node's. Each
         of them with the server processes' CPU time per request (user and
         system, all threads; during the PUTs, that of the fills that ran
         meanwhile too), what the server spent apart from what this client
         took of the CPUs. With
         --many-rounds N, N such bursts on each node, each of new images
         once the last is cached (so the later ones meet a cache that holds
         the earlier ones): on a machine whose speed moves, the median
         says more than one burst.
listing  GET /v2/cache with --listing cached entries, unchanged between two
         GETs (the node reuses its last encoding) and with one entry
         changed (a hit) before each; then GET /v2/cache/jobs, all of them
         and ?state=caching (which reads only the pending records), and all
         of them with one job finished (deleted, queued again and cached)
         before each.

The timed requests go out on plain kept-alive http.client connections (see
_common.Client), not through requests, whose own CPU per request exceeds
what the node takes to answer GET /versions, and would take the server's
CPU in a burst.

Start a run a few minutes after anything deleted many files (a test run,
the previous run's clean-up): on ext4 without a journal each new file is
checked against the inodes of its group freed in the last minutes, and the
node creates four files per image it caches.

With --glance, each part runs a second time against upstream Glance installed
in VENV (``make glance-venv``), served the same way (the listing part with
--glance-listing entries, on both): the issue's targets were set against
Glance on another machine; these figures come from this one, in one run.
"""

import argparse
import concurrent.futures
import contextlib
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import requests

from glance_cache.cache import hashing

import _bare
import _common as common
import _glance

PARTS = ('small', 'busy', 'many', 'listing')


def percentile(values, fraction):
    """The nearest-rank percentile: the smallest value that ``fraction`` of them do not exceed.

    >>> percentile(range(1, 101), 0.99), percentile(range(1, 51), 0.99)
    (99, 50)
    """
    ordered = sorted(values)
    return ordered[max(math.ceil(len(ordered) * fraction) - 1, 0)]


def ms(seconds):
    return '%.1f ms' % (seconds * 1000)


# How the benchmarks authenticate to this node (noauth: the token names the role).
ADMIN = {'X-Auth-Token': 'admin'}


def headers_of(node):
    """The identity headers ``node`` takes (a GlanceNode has its own)."""
    return getattr(node, 'headers', ADMIN)


def active_images(node, count, size, threads=4):
    """``count`` active images of ``size`` random bytes, created over HTTP."""
    headers = headers_of(node)
    threads = min(threads, getattr(node, 'setup_threads', threads))

    def make(_):
        session = requests.Session()
        image = session.post(node.url + '/v2/images', headers=headers,
                             json={'name': 'bench', 'disk_format': 'raw',
                                   'container_format': 'bare'}).json()
        # Random, but for where a partition table's signature would be: random
        # bytes there are one now and then, and Glance's format checks refuse
        # an image that looks partitioned but is not.
        data = bytearray(os.urandom(size))
        data[510:512] = bytes(len(data[510:512]))
        resp = session.put('%s/v2/images/%s/file' % (node.url, image['id']),
                           data=bytes(data),
                           headers=dict(headers, **{'Content-Type':
                                                    'application/octet-stream'}))
        assert resp.status_code == 204, resp.text
        return image['id']
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(make, range(count)))


def queue(session, node, image_id):
    resp = session.put('%s/v2/cache/%s' % (node.url, image_id), headers=headers_of(node))
    assert resp.status_code == 202, resp.text


def cached_at(node):
    """{image id: when it was cached} for the images ``node`` lists as cached.

    This node's job records say when each fill ended; Glance's entries when
    they were written.
    """
    if hasattr(node, 'cached_at'):
        return node.cached_at()
    jobs = node.request('GET', '/v2/cache/jobs').json()['jobs']
    return {job['image_id']: job['finished_at'] for job in jobs
            if job['state'] == 'cached' and job.get('finished_at')}


def _pending_jobs(node):
    """How many jobs ``node`` has queued or caching (0 for Glance, which does
    not tell): a node keeps those records apart, so this costs it little."""
    if hasattr(node, 'cached_at'):
        return 0
    return sum(len(node.request('GET', '/v2/cache/jobs?state=%s' % state).json()['jobs'])
               for state in ('queued', 'caching'))


def wait_cached_at(node, image_id, **kwargs):
    """When ``image_id`` was cached, once it is."""
    if hasattr(node, 'wait_cached'):
        return node.wait_cached(image_id, **kwargs)
    return common.wait_cached(node, image_id, **kwargs)['finished_at']


def measured_on(node, measure):
    """``measure(node)``; the node is stopped afterwards, whatever happens."""
    try:
        return measure(node)
    finally:
        node.stop()


def on_glance(args, directory, measure, workers=1):
    """``measure(node)`` on a fresh upstream Glance node, or None without ``--glance``."""
    if not args.glance:
        return None
    return measured_on(_glance.GlanceNode(args.glance, directory, workers=workers).start(),
                       measure)


def _small_on(node, count):
    """Seconds for GET /versions, for PUT /v2/cache to be answered and from it
    to the image being cached, ``count`` of each, one after another."""
    ids = active_images(node, count, 64 * 1024)
    session = common.Client(node.url)
    # The reference: the cheapest request the node serves, on the same
    # kind of connection (what HTTP, the server and this client cost).
    floor = []
    for _ in range(count):
        started = time.time()
        assert session.get(node.url + '/versions').status_code == 200
        floor.append(time.time() - started)
    answered, to_cached = [], []
    for image_id in ids:
        started = time.time()
        queue(session, node, image_id)
        answered.append(time.time() - started)
        to_cached.append(wait_cached_at(node, image_id) - started)
    return floor, answered, to_cached


def part_small(args, directory):
    floor, answered, to_cached = measured_on(
        common.start_node(os.path.join(directory, 'small')),
        lambda node: _small_on(node, args.small))
    print('[small] %d images of 64 KiB, one after another' % args.small)
    print('  PUT /v2/cache answered: median %s, p99 %s (GET /versions: median %s; '
          'PUT = %.2f x)' % (ms(statistics.median(answered)), ms(percentile(answered, 0.99)),
                             ms(statistics.median(floor)),
                             statistics.median(answered) / statistics.median(floor)))
    print('  PUT to cached:          median %s, p99 %s'
          % (ms(statistics.median(to_cached)), ms(percentile(to_cached, 0.99))))
    figures = on_glance(args, os.path.join(directory, 'small-glance'),
                        lambda glance: _small_on(glance, args.small))
    if figures is None:
        return
    g_floor, g_answered, g_to_cached = figures
    print('  Glance, the same way: PUT answered median %s, p99 %s (GET /versions: median '
          '%s); PUT to cached median %s, p99 %s'
          % (ms(statistics.median(g_answered)), ms(percentile(g_answered, 0.99)),
             ms(statistics.median(g_floor)), ms(statistics.median(g_to_cached)),
             ms(percentile(g_to_cached, 0.99))))
    print('  this node / Glance: PUT answered median %.2f x; PUT to cached median %.2f x, '
          'p99 %.2f x'
          % (statistics.median(answered) / statistics.median(g_answered),
             statistics.median(to_cached) / statistics.median(g_to_cached),
             percentile(to_cached, 0.99) / percentile(g_to_cached, 0.99)))


# How often the busy part asks whether its fill ended. The fill's time comes
# from the job's own started_at and finished_at, so a slow poll costs the
# figure nothing, and it keeps the asking from competing with what is measured.
FILL_POLL = 0.25
# The shortest window GET /v2/cache latencies are sampled over.
IDLE_SECONDS = 3.0


def _poll_list(node, stop, latencies):
    session = common.Client(node.url)
    while not stop.is_set():
        started = time.perf_counter()
        resp = session.get(node.url + '/v2/cache', headers=headers_of(node))
        latencies.append(time.perf_counter() - started)
        assert resp.status_code == 200


@contextlib.contextmanager
def _polled(node, latencies):
    """GET /v2/cache polled back to back meanwhile, its latencies appended to
    ``latencies``; nothing polled if that is None."""
    if latencies is None:
        yield
        return
    stop = threading.Event()
    poller = threading.Thread(target=_poll_list, args=(node, stop, latencies))
    poller.start()
    try:
        yield
    finally:
        stop.set()
        poller.join()


def _sample_list(node, seconds=IDLE_SECONDS):
    """GET /v2/cache latencies, back to back, over a fixed sampling window."""
    latencies = []
    with _polled(node, latencies):
        time.sleep(seconds)   # the sampling window, not a wait for anything
    return latencies


def _while_running(commands, source, measure, cpus=None):
    """``measure()`` while each shell command runs over and over on ``source``
    (``$0`` in the command), in processes of their own, bound to ``cpus``."""
    def bind():
        if cpus is not None:
            os.sched_setaffinity(0, cpus)  # the commands inherit it from the shell

    procs = [subprocess.Popen(['sh', '-c', 'while :; do %s; done' % command, source],
                              start_new_session=True, preexec_fn=bind)
             for command in commands]
    try:
        return measure()
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if os.path.exists(source + '.copy'):
            os.unlink(source + '.copy')


# The references for the listing's tail during a fill, with no node in them:
# the CPU of a fill's two digests, and copying the image (the fill's own
# thread reads the store and writes the cache) on the CPU a background fill
# gets by default.
HASHING = ('md5sum "$0" >/dev/null', 'sha512sum "$0" >/dev/null')
COPYING = ('cp "$0" "$0.copy"',)
# And the least a fill can take from the node: its CPU, with no I/O and no
# memory traffic at all (a Python loop that does nothing, for ever).
SPINNING = ('"%s" -c "while True: pass"' % sys.executable,)


# A fill's work without the node: copy the image, and hash it at the
# digests' niceness, on the CPU a background fill gets; then sync the copy.
FILL_WORK = ('cp "$0" "$0.copy" & '
             'nice -n %d md5sum "$0" >/dev/null & nice -n %d sha512sum "$0" >/dev/null & '
             'wait; sync "$0.copy"' % (hashing.DIGEST_NICENESS, hashing.DIGEST_NICENESS))


def _fill_work_seconds(source, cpu, node=None):
    """Seconds of FILL_WORK on ``source`` bound to ``cpu``; with ``node``, while
    GET /v2/cache is polled back to back."""
    common.timed('sync')
    try:
        with _polled(node, None if node is None else []):
            started = time.perf_counter()
            subprocess.run(['sh', '-c', FILL_WORK, source], check=True,
                           preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
            return time.perf_counter() - started
    finally:
        if os.path.exists(source + '.copy'):
            os.unlink(source + '.copy')


def _busy_references(node, source):
    """The listing's tail while the fill's work runs without the node, and that
    work's time alone and while GET /v2/cache is polled: (references,
    (CPU, its work alone, its work polled))."""
    # On a machine with few cores the listing's tail then reflects what they
    # take from it, not the node.
    fill_cpu = max(os.sched_getaffinity(0))
    references = [
        ('md5sum and sha512sum hash the image in other processes',
         _while_running(HASHING, source, lambda: _sample_list(node))),
        ('cp copies the image in another process, bound to CPU %d' % fill_cpu,
         _while_running(COPYING, source, lambda: _sample_list(node), {fill_cpu})),
        ('a loop that does nothing spins in another process, bound to CPU %d' % fill_cpu,
         _while_running(SPINNING, source, lambda: _sample_list(node), {fill_cpu}))]
    # The first run untimed, as for the fill.
    _fill_work_seconds(source, fill_cpu)
    return references, (fill_cpu, _fill_work_seconds(source, fill_cpu),
                        _fill_work_seconds(source, fill_cpu, node))


def _node_fill(node, image):
    """A function timing one fill of ``image`` on ``node`` by its job record;
    with ``latencies``, GET /v2/cache polled meanwhile."""
    def fill(latencies=None):
        node.request('DELETE', '/v2/cache/%s' % image['id'])
        common.timed('sync')
        with _polled(node, latencies):
            queue(requests, node, image['id'])
            job = common.wait_cached(node, image['id'], timeout=3600, interval=FILL_POLL)
        return job['finished_at'] - job['started_at']
    return fill


# The busy part's nodes: the default, then with the fills' bytes through the
# server process instead of the kernel's copy, then with fills on every CPU.
BUSY_CONFIGURATIONS = (
    ('fill_cpu_reserve = default', {}),
    ('kernel_copy = false (each MiB through the server process)', {'kernel_copy': 'false'}),
    ('fill_cpu_reserve = 0', {'fill_cpu_reserve': '0'}))


def part_busy(args, directory):
    work = os.path.join(directory, 'busy')
    os.makedirs(work)
    source = common.make_file(os.path.join(work, 'source.img'), args.fill_mib)
    rounds = args.busy_rounds
    print('[busy] %d MiB fill; GET /v2/cache back to back; %d CPUs%s'
          % (args.fill_mib, len(os.sched_getaffinity(0)),
             '' if rounds == 1 else '; %d rounds on each node, taken in turns' % rounds))
    configurations = list(BUSY_CONFIGURATIONS)
    code = [None] * len(configurations)
    if args.baseline:
        # The default configuration again, on the code at that revision.
        configurations.append(('the code at %s, fill_cpu_reserve = default' % args.baseline, {}))
        code.append(args.baseline_code)
    nodes = []
    try:
        for i, (_, options) in enumerate(configurations):
            node = common.start_node(os.path.join(work, 'node-%d' % i), {
                'cache': dict({'max_size': str(4 * args.fill_mib * common.MIB)}, **options)},
                code=code[i])
            nodes.append(node)
        fills = [_node_fill(node, common.upload(node, source)) for node in nodes]
        references, fill_work = _busy_references(nodes[0], source)
        figures = _filled_rounds(nodes, fills, rounds)
    finally:
        for node in nodes:
            node.stop()
    median = statistics.median
    for i, ((label, _), (idle, busy, alone, polled)) in enumerate(
            zip(configurations, figures, strict=True)):
        print('  %s' % label)
        _print_busy(idle, busy, alone, polled)
        if i >= len(BUSY_CONFIGURATIONS):
            ours = figures[0]
            print('    this code / that: GET /v2/cache p99 during the fill %.2f x, its growth '
                  '%.2f x; fill while polled %.2f x'
                  % (percentile(ours[1], 0.99) / percentile(busy, 0.99),
                     _p99_growth(*ours[:2]) / _p99_growth(idle, busy),
                     median(ours[3]) / median(polled)))
        if i:
            continue
        for what, latencies in references:
            print('    GET /v2/cache p99 while %s: %s (%d requests): %.2f x idle; the '
                  'fill\'s = %.2f x this'
                  % (what, ms(percentile(latencies, 0.99)), len(latencies),
                     percentile(latencies, 0.99) / percentile(idle, 0.99),
                     percentile(busy, 0.99) / percentile(latencies, 0.99)))
        cpu, work_alone, work_polled = fill_work
        print('    reference: cp, and md5sum and sha512sum at niceness %d, of the image, '
              'bound to CPU %d: alone %.2f s, while polled %.2f s: %.2f x; the fill\'s '
              '= %.2f x this'
              % (hashing.DIGEST_NICENESS, cpu, work_alone, work_polled,
                 work_polled / work_alone,
                 (median(polled) / median(alone)) / (work_polled / work_alone)))
    figures = on_glance(args, os.path.join(work, 'glance'),
                        lambda glance: _busy_glance(glance, source, rounds))
    if figures is not None:
        print('  Glance, the same way (the fills timed from the PUT)')
        _print_busy(*figures)
    os.unlink(source)


def _p99_growth(idle, busy):
    """How many times the listing's p99 during the fills is its idle p99.

    >>> _p99_growth([1.0] * 100, [1.5] * 100)
    1.5
    """
    return percentile(busy, 0.99) / percentile(idle, 0.99)


def _print_busy(idle, busy, alone, polled):
    """Print the listing's p99 idle and during the fills, and the fills' times."""
    median = statistics.median
    print('    GET /v2/cache p99: idle %s (%d requests), during the fill %s '
          '(%d requests): %.2f x' % (ms(percentile(idle, 0.99)), len(idle),
                                     ms(percentile(busy, 0.99)), len(busy),
                                     _p99_growth(idle, busy)))
    print('    fill: alone %s, while polled %s: %.2f x'
          % (_series(alone), _series(polled), median(polled) / median(alone)))


def _busy_glance(glance, source, rounds):
    """(idle, during the fills, fills alone, fills polled) on a GlanceNode."""
    image = common.upload(glance, source)

    def fill(latencies=None):
        """Seconds from the PUT to the entry; with ``latencies``, GET /v2/cache
        polled meanwhile. Glance keeps no start time of its own."""
        glance.request('DELETE', '/v2/cache/%s' % image['id'])
        common.timed('sync')
        with _polled(glance, latencies):
            started = time.time()
            queue(requests, glance, image['id'])
            return glance.wait_cached(image['id'], interval=FILL_POLL) - started

    return _filled_rounds([glance], [fill], rounds)[0]


def _filled_rounds(nodes, fills, rounds):
    """For each node, (idle, during the fills, fills alone, fills polled) of its
    ``fill(latencies=None)``, over ``rounds`` rounds taken in turns.

    One fill on each first, untimed: the timed ones then start from the same
    state (the upload's data written back, the first fill's one-off costs
    paid). In each round, each node's fill runs alone, then with the listing
    polled; the idle listing is sampled as long as the fill alone took (3 s
    at least), half just before and half just after the polled fill: its
    tail then rests on about as many requests, from about the same minutes,
    as the tail during the fill (on a shared machine a 3 s sample moved by
    2 x from one run to the next). Taking the rounds in turns spreads the
    machine's changes of speed over the nodes alike.
    """
    for fill in fills:
        fill()
    figures = [([], [], [], []) for _ in nodes]
    for _ in range(rounds):
        for node, fill, (idle, busy, alone, polled) in zip(nodes, fills, figures,
                                                          strict=True):
            alone.append(fill())
            half = max(alone[-1], IDLE_SECONDS) / 2
            idle += _sample_list(node, half)
            polled.append(fill(busy))
            idle += _sample_list(node, half)
    return figures


def _burst(server, request, items):
    """(when it started, seconds, the server's CPU seconds) of ``request(client,
    item)`` for every item, from 4 client threads, each on a kept-alive
    connection of its own to ``server`` (a node, Glance or a BareServer)."""
    sessions = threading.local()
    processes = common.server_pids(server)

    def send(item):
        if not hasattr(sessions, 's'):
            sessions.s = common.Client(server.url)
        request(sessions.s, item)

    cpu = common.cpu_seconds(processes)
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(send, items))
    return started, time.time() - started, common.cpu_seconds(processes) - cpu


def _bare_rounds(directory, workers, count, rounds):
    """(seconds, server CPU seconds) for ``count`` GET / from 4 client threads
    to a WSGI application that does nothing under the node's gunicorn
    settings, each a tuple over ``rounds`` bursts."""
    server = _bare.BareServer(directory, workers).start()

    def get(session, _):
        assert session.get(server.url + '/').status_code == 200

    try:
        # gunicorn listens before its processes have started: the first
        # burst, untimed, waits for them and opens the connections.
        _burst(server, get, range(count))
        return tuple(zip(*(_burst(server, get, range(count))[1:] for _ in range(rounds)),
                         strict=True))
    finally:
        server.stop()


def _many_on(node, count):
    """(seconds for ``count`` GET /versions, until every PUT was answered, until
    all were cached, the server's CPU seconds in the GETs, in the PUTs), each
    from 4 client threads, the second and third from the first PUT."""
    ids = active_images(node, count, 4096)

    # The reference: as many of the cheapest requests the node serves, sent
    # the same way (what HTTP, the server and this client cost).
    def versions(session, _):
        assert session.get(node.url + '/versions').status_code == 200

    _, floor, floor_cpu = _burst(node, versions, range(count))
    first, accepted, put_cpu = _burst(
        node, lambda session, image_id: queue(session, node, image_id), ids)

    # The figure comes from when each image was cached, not from when this
    # loop notices: a slow poll keeps the listing's cost off the node. The
    # node may hold the images of earlier rounds too. Every job's record is
    # read only once none is pending: listing thousands of them while the
    # images are cached would take the node's CPU from its fills.
    def cached_now():
        if _pending_jobs(node):
            return []
        done = cached_at(node)
        return [done[image_id] for image_id in ids if image_id in done]
    finished = common.helpers.wait_for(
        lambda: (lambda done: len(done) == len(ids) and done)(cached_now()),
        'all images to be cached', timeout=600, interval=0.5)
    return floor, accepted, max(finished) - first, floor_cpu, put_cpu


def _many_rounds(nodes, count, rounds):
    """For each of ``nodes``, (floors, answered, cached, floor CPU, PUT CPU):
    the figures of ``rounds`` runs of _many_on, each as a tuple over the
    rounds; the nodes' rounds are taken in turns, so that a change in the
    machine's speed meets all of them alike."""
    figures = [[] for _ in nodes]
    for _ in range(rounds):
        for node, mine in zip(nodes, figures, strict=True):
            mine.append(_many_on(node, count))
    return [tuple(zip(*mine, strict=True)) for mine in figures]


def _series(values, unit='s'):
    """One figure, or several and their median.

    >>> _series([2.5]), _series([2.5, 3.0, 2.0])
    ('2.50 s', '2.50 / 3.00 / 2.00 s, median 2.50 s')
    """
    if len(values) == 1:
        return '%.2f %s' % (values[0], unit)
    return '%s %s, median %.2f %s' % (' / '.join('%.2f' % v for v in values), unit,
                                     statistics.median(values), unit)


def part_many(args, directory):
    rounds = args.many_rounds
    print('[many] %d images queued from 4 threads%s'
          % (args.many, '' if rounds == 1 else ', %d rounds on each node' % rounds))
    median = statistics.median
    # One server process (the default), then one per core (Glance's default).
    for workers in (1, os.cpu_count()):
        base = os.path.join(directory, 'many-%d' % workers)
        options = {'DEFAULT': {'workers': str(workers)}}
        nodes = []
        try:
            nodes.append(common.start_node(base, options))
            nodes.append(common.start_node(base + '-no-hold',
                                           dict(options, cache={'burst_max_hold': '0'})))
            if args.baseline:
                nodes.append(common.start_node(base + '-baseline', options,
                                               code=args.baseline_code))
            ours, no_hold, *baseline = _many_rounds(nodes, args.many, rounds)
        finally:
            for node in nodes:
                node.stop()
        floors, answered, cached, floor_cpu, put_cpu = ours
        print('  workers = %d: all PUTs answered: %s (%d GET /versions the same way: '
              '%s; PUTs = %.2f x); all cached: %s after the first PUT'
              % (workers, _series(answered), args.many, _series(floors),
                 median(answered) / median(floors), _series(cached)))
        print('    server CPU per request: %s' % _cpu_per_request(args.many, floor_cpu, put_cpu))
        _, h_answered, h_cached, h_floor_cpu, h_put_cpu = no_hold
        print('    without the burst hold ([cache] burst_max_hold = 0, its rounds taken in '
              'turns with these): all PUTs answered: %s; all cached: %s; server CPU per '
              'request: %s; with the hold / without: %.2f x and %.2f x'
              % (_series(h_answered), _series(h_cached),
                 _cpu_per_request(args.many, h_floor_cpu, h_put_cpu),
                 median(answered) / median(h_answered), median(cached) / median(h_cached)))
        if baseline:
            b_floors, b_answered, b_cached, b_floor_cpu, b_put_cpu = baseline[0]
            print('    the code at %s, the same way (its rounds taken in turns with these): '
                  'all PUTs answered: %s (GET /versions: %s); all cached: %s; server CPU per '
                  'request: %s; this code / that: %.2f x and %.2f x'
                  % (args.baseline, _series(b_answered), _series(b_floors), _series(b_cached),
                     _cpu_per_request(args.many, b_floor_cpu, b_put_cpu),
                     median(answered) / median(b_answered), median(cached) / median(b_cached)))
        bare, bare_cpu = _bare_rounds(os.path.join(directory, 'many-%d-bare' % workers),
                                      workers, args.many, rounds)
        print('    gunicorn alone (the same settings, an application that does nothing), '
              '%d GET the same way: %s, server CPU per request %s; GET /versions = %.2f x, '
              'PUTs = %.2f x this'
              % (args.many, _series(bare), _per_request(args.many, bare_cpu),
                 median(floors) / median(bare), median(answered) / median(bare)))
        figures = on_glance(args, os.path.join(directory, 'many-%d-glance' % workers),
                            lambda glance: _many_rounds([glance], args.many, rounds)[0], workers)
        if figures is None:
            continue
        g_floors, g_answered, g_cached, g_floor_cpu, g_put_cpu = figures
        print('    Glance, the same way: all PUTs answered: %s (GET /versions: %s); '
              'all cached: %s; this node / Glance: %.2f x and %.2f x'
              % (_series(g_answered), _series(g_floors), _series(g_cached),
                 median(answered) / median(g_answered), median(cached) / median(g_cached)))
        print('      its server CPU per request: %s'
              % _cpu_per_request(args.many, g_floor_cpu, g_put_cpu))


def _per_request(count, cpu_seconds):
    """The median of a series of CPU seconds for ``count`` requests, per request.

    >>> _per_request(1000, (0.3, 0.5, 0.4))
    '0.40 ms'
    """
    return '%.2f ms' % (statistics.median(cpu_seconds) * 1000 / count)


def _cpu_per_request(count, floor_cpu, put_cpu):
    return ('GET /versions %s, PUT %s (with the fills that ran meanwhile)'
            % (_per_request(count, floor_cpu), _per_request(count, put_cpu)))


def _listing_on(node, count):
    """GET /v2/cache latencies with ``count`` cached entries: 50 with nothing
    changed between two GETs, 50 with one entry changed (a hit) before each."""
    headers = headers_of(node)
    ids = active_images(node, count, 512)
    session = common.Client(node.url)
    for image_id in ids:
        queue(session, node, image_id)
    common.helpers.wait_for(lambda: len(cached_at(node)) == len(ids),
                            'all images to be cached', timeout=1800, interval=0.5)

    def timed_listing():
        started = time.perf_counter()
        body = session.get(node.url + '/v2/cache', headers=headers)
        elapsed = time.perf_counter() - started
        assert len(body.json()['cached_images']) == len(ids)
        return elapsed

    # Untimed: the first GET after the fills encodes every entry.
    timed_listing()
    unchanged = [timed_listing() for _ in range(50)]
    changed = []
    for image_id in ids[:50]:
        # A download counts a hit: the listing that follows is built afresh.
        resp = session.get('%s/v2/images/%s/file' % (node.url, image_id), headers=headers)
        assert resp.status_code == 200
        changed.append(timed_listing())
    jobs = {}
    if not hasattr(node, 'cached_at'):   # Glance has no jobs resource
        def timed_jobs(query=''):
            started = time.perf_counter()
            resp = session.get(node.url + '/v2/cache/jobs' + query, headers=headers)
            elapsed = time.perf_counter() - started
            assert resp.status_code == 200, resp.text
            return elapsed

        for query in ('', '?state=caching'):
            jobs[query] = [timed_jobs(query) for _ in range(JOBS_SAMPLES)]
        # A job that finished makes every process read each record again.
        jobs[', a job finished before each GET'] = finished = []
        for image_id in ids[:JOBS_SAMPLES]:
            assert session.delete('%s/v2/cache/%s' % (node.url, image_id),
                                  headers=headers).status_code == 204
            queue(session, node, image_id)
            wait_cached_at(node, image_id)
            finished.append(timed_jobs())
    return unchanged, changed, jobs


# GET /v2/cache/jobs reads every job record: fewer samples than the listing.
JOBS_SAMPLES = 10


def _print_listing(unchanged, changed, jobs):
    print('  nothing changed since the last GET: median %s, p99 %s'
          % (ms(statistics.median(unchanged)), ms(percentile(unchanged, 0.99))))
    print('  an entry changed before each GET:   median %s, p99 %s'
          % (ms(statistics.median(changed)), ms(percentile(changed, 0.99))))
    for query, latencies in jobs.items():
        print('  GET /v2/cache/jobs%s: median %s, max %s'
              % (query, ms(statistics.median(latencies)), ms(max(latencies))))


def part_listing(args, directory):
    def on_node(subdir, count):
        return measured_on(common.start_node(os.path.join(directory, subdir),
                                             {'cache': {'worker_threads': '2'}}),
                           lambda node: _listing_on(node, count))

    runs = [('this node', args.listing, lambda: on_node('listing', args.listing))]
    # Glance too, where asked, with --glance-listing entries (Glance creates
    # images one at a time: 10,000 would take it a quarter of an hour).
    if args.glance:
        runs += [('this node', args.glance_listing,
                  lambda: on_node('listing-small', args.glance_listing)),
                 ('Glance', args.glance_listing,
                  lambda: on_glance(args, os.path.join(directory, 'listing-glance'),
                                    lambda glance: _listing_on(glance, args.glance_listing)))]
    for name, count, run in runs:
        figures = run()
        print('[listing] GET /v2/cache with %d cached entries (%s)' % (count, name))
        _print_listing(*figures)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--small', type=int, default=100)
    parser.add_argument('--many', type=int, default=1000)
    parser.add_argument('--many-rounds', type=int, default=1,
                        help='bursts of --many images on each node of the many part, one '
                             'after another (each after the last is cached); the ratios '
                             'are of the medians')
    parser.add_argument('--busy-rounds', type=int, default=1,
                        help='fills alone and polled on each node of the busy part, in '
                             'turns; the ratios are of the medians')
    parser.add_argument('--listing', type=int, default=10000)
    parser.add_argument('--fill-mib', type=int, default=2048)
    parser.add_argument('--skip', nargs='*', default=[], choices=PARTS)
    parser.add_argument('--glance', metavar='VENV',
                        help='also run the parts against upstream Glance installed in VENV '
                             '(make glance-venv builds .venv-glance)')
    parser.add_argument('--glance-listing', type=int, default=1000,
                        help='cached entries for the listing part on Glance (and on this '
                             'node again, to compare)')
    parser.add_argument('--baseline', metavar='REVISION',
                        help='in the busy and many parts, also run a node of the code at '
                             'this git revision (checked out into the scratch directory), '
                             'its rounds in turns with the others: what a change did, on '
                             'the same machine in the same minutes')
    args = parser.parse_args()
    if args.many_rounds < 1 or args.busy_rounds < 1:
        parser.error('--many-rounds and --busy-rounds must be 1 or more')
    if args.glance:
        _glance.check_venv(args.glance)
    directory = common.workdir('gc-bench-cache-api-')
    if args.baseline:
        args.baseline_code = common.checkout(args.baseline, os.path.join(directory, 'baseline'))
    for part in PARTS:
        if part not in args.skip:
            with common.StolenTime() as stolen:
                globals()['part_' + part](args, directory)
            print('  [%s] %s' % (part, stolen))


if __name__ == '__main__':
    main()
