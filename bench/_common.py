"""Shared pieces of the benchmark scripts: a node, a big image, RSS sampling, timing.

Benchmarks print ratios against a reference measured in the same run on the
same file, so that figures from different machines can be compared.
"""

import atexit
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests import helpers  # noqa: E402

MIB = 1024 * 1024


def _exit_on_sigterm():
    """Make SIGTERM (``kill``, ``pkill``) end the script as an exception does.

    By default it ends the process at once, skipping the ``finally`` blocks
    that stop the nodes and the exit handlers that remove the scratch
    directory and forget a --baseline worktree.
    """
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def workdir(prefix):
    """A scratch directory, removed when the script exits (SIGTERM included).

    The parts write images of gigabytes; left behind, a few runs fill the
    disk. Set GLANCE_CACHE_BENCH_KEEP=1 to keep it for a look afterwards.
    """
    _exit_on_sigterm()
    base = os.environ.get('GLANCE_CACHE_BENCH_DIR') or tempfile.gettempdir()
    directory = tempfile.mkdtemp(prefix=prefix, dir=base)
    if not os.environ.get('GLANCE_CACHE_BENCH_KEEP'):
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _cpu_ticks():
    """(all, stolen) CPU time of the machine so far, in clock ticks; None off Linux."""
    try:
        with open('/proc/stat') as f:
            fields = f.readline().split()
    except OSError:
        return None
    # cpu  user nice system idle iowait irq softirq steal [guest guest_nice]:
    # guest time is counted in user time already.
    values = [int(v) for v in fields[1:9]]
    return sum(values), (values[7] if len(values) == 8 else 0)


class StolenTime:
    """How much of the CPUs' time the hypervisor gave elsewhere while the block ran.

    On a virtual machine that time ("steal" in /proc/stat) is taken from the
    server and the benchmark alike, at moments neither chooses: figures
    measured while it was high are slower by it, and so the scripts print it
    beside each part's figures, for runs to be compared.

    >>> with StolenTime() as stolen:
    ...     time.sleep(0.05)
    >>> 0.0 <= stolen.share <= 1.0
    True
    >>> str(stolen).endswith(' %')
    True
    """

    def __enter__(self):
        self._start = _cpu_ticks()
        self.share = None
        return self

    def __exit__(self, *exc_info):
        end = _cpu_ticks()
        if self._start is not None and end is not None and end[0] > self._start[0]:
            self.share = (end[1] - self._start[1]) / (end[0] - self._start[0])

    def __str__(self):
        if self.share is None:
            return 'CPU time stolen by the hypervisor: not known'
        return ('CPU time stolen by the hypervisor meanwhile (steal in /proc/stat): '
                '%.1f %%' % (100 * self.share))


def make_file(path, size_mib):
    """A file of random data (random so that no layer can compress it)."""
    block = os.urandom(MIB)
    with open(path, 'wb') as f:
        for i in range(size_mib):
            # Vary every MiB cheaply so blocks are not identical either.
            f.write(i.to_bytes(8, 'little') + block[8:])
    return path


def start_node(directory, options=None, server_args=(), code=None):
    """A node of this checkout's code, or of the checkout at ``code`` (a directory)."""
    # The server imports glance_cache from the first place on its path, and
    # PYTHONPATH comes before the project's own install in the virtualenv.
    env = None if code is None else dict(os.environ, PYTHONPATH=code)
    node = helpers.Node(directory, 'sqlite:///%s' % os.path.join(directory, 'gc.db'),
                        options or {}, server_args, env=env)
    return node.start()


def checkout(revision, directory):
    """The project's code at the git ``revision``, checked out into ``directory``
    (a git worktree, which git forgets when the script exits)."""
    subprocess.run(['git', '-C', ROOT, 'worktree', 'add', '--detach', '--quiet', directory,
                    revision], check=True)
    atexit.register(subprocess.run, ['git', '-C', ROOT, 'worktree', 'remove', '--force',
                                     directory], check=False)
    return directory


def upload(node, path):
    """Create an active image from ``path``; returns the image record."""
    image = node.create_image()
    with open(path, 'rb') as f:
        resp = node.request('PUT', '/v2/images/%s/file' % image['id'], data=f,
                            headers={'Content-Type': 'application/octet-stream',
                                     'Content-Length': str(os.path.getsize(path))},
                            timeout=3600)
    assert resp.status_code == 204, resp.text
    return node.request('GET', '/v2/images/%s' % image['id']).json()


def worker_pids(node):
    """The gunicorn worker processes of a node (children of its master)."""
    out = subprocess.run(['pgrep', '-P', str(node.proc.pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()] or [node.proc.pid]


def server_pids(server):
    """A server's processes: the one started and its children (gunicorn's
    master and workers), not the workers' own children."""
    return sorted({server.proc.pid, *worker_pids(server)})


def cpu_seconds(pids):
    """The user and system CPU seconds the processes ``pids`` have used, all
    their threads included."""
    ticks = 0
    for pid in pids:
        with open('/proc/%d/stat' % pid) as f:
            # After the command name in parentheses: utime and stime are the
            # 12th and 13th fields.
            fields = f.read().rsplit(')', 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf('SC_CLK_TCK')


def rss_kib(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass  # it ended meanwhile
    return 0


def _cmdline(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return f.read()
    except OSError:
        return None


def descendants(pid):
    """The processes below ``pid`` (a fill's digest processes, say), now.

    A child that has not yet exec'd its program (its command line is still
    its parent's) is left out: until then it shares or copies the parent's
    memory, and counting it would count the parent twice.
    """
    found = []
    try:
        tasks = os.listdir('/proc/%d/task' % pid)
    except OSError:
        return found
    parent = _cmdline(pid)
    for task in tasks:
        try:
            with open('/proc/%d/task/%s/children' % (pid, task)) as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for child in children:
            if _cmdline(child) != parent:
                found += [child] + descendants(child)
    return found


class RssSampler:
    """Peak RSS of some processes and of their descendants at the time, sampled
    every few milliseconds in a thread."""

    def __init__(self, pids, interval=0.005):
        self.pids = pids
        self.interval = interval
        self.before = self._total()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total(self):
        return sum(rss_kib(p) for pid in self.pids for p in [pid] + descendants(pid))

    def _run(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._total())

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(command, **kwargs):
    """Wall seconds of a shell command."""
    start = time.perf_counter()
    subprocess.run(command, shell=True, check=True, **kwargs)
    return time.perf_counter() - start


class Response:
    """What a Client's request answered: ``status_code``, ``content``, ``json()``."""

    def __init__(self, status_code, content):
        self.status_code = status_code
        self.content = content

    @property
    def text(self):
        return self.content.decode('utf-8', 'replace')

    def json(self):
        return json.loads(self.content)


class Client:
    """One kept-alive HTTP/1.1 connection to a server, for the timed requests.

    The requests library, which the set-up uses, costs this process more
    CPU per request than the node takes to answer GET /versions (the small
    part's median GET /versions was 1.7 ms through it, 0.5-0.9 ms through
    this): a figure of a few milliseconds would be largely the client's, and
    in a burst from 4 threads that CPU is taken from the server. Same
    interface as far as the benchmarks use one: ``get``, ``put``, ``delete``
    with ``headers``, and a Response.

    A connection the server closed while idle is opened again once; any
    other failure is raised.
    """

    def __init__(self, url, timeout=60):
        parts = urllib.parse.urlsplit(url)
        self._address = (parts.hostname, parts.port)
        self._timeout = timeout
        self._conn = None

    def request(self, method, url, headers=None):
        path = urllib.parse.urlsplit(url)
        path = path.path + ('?' + path.query if path.query else '')
        for reopened in (False, True):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(*self._address, timeout=self._timeout)
            try:
                self._conn.request(method, path, headers=headers or {})
                resp = self._conn.getresponse()
                content = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reopened:
                    raise
                continue
            if resp.will_close:
                self.close()
            return Response(resp.status, content)

    def get(self, url, headers=None):
        return self.request('GET', url, headers)

    def put(self, url, headers=None):
        return self.request('PUT', url, headers)

    def delete(self, url, headers=None):
        return self.request('DELETE', url, headers)

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def wait_cached(node, image_id, timeout=3600, interval=0.01):
    def job():
        resp = node.request('GET', '/v2/cache/jobs/%s' % image_id)
        record = resp.json() if resp.status_code == 200 else {}
        if record.get('state') == 'failed':
            raise RuntimeError('caching failed: %s' % record.get('last_error'))
        # finished_at comes with the worker's record update, a moment after the
        # entry is listed; the figures use it, so wait for it.
        if record.get('state') == 'cached' and record.get('finished_at'):
            return record
        return None
    return helpers.wait_for(job, 'image %s to be cached' % image_id, timeout=timeout,
                            interval=interval)


def sha512_of(path):
    digest = hashlib.sha512()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(MIB), b''):
            digest.update(block)
    return digest.hexdigest()
