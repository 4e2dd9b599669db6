"""Test helpers: a real glance-cache node in its own process, and throwaway databases."""

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
API_COMMAND = os.path.join(BIN, 'glance-cache-api')
MANAGE_COMMAND = os.path.join(BIN, 'glance-cache-manage')
LISTENING = re.compile(r'glance-cache-api listening on (http://\S+)')
START_TIMEOUT = 60

PG_ADMIN_URL = os.environ.get('GLANCE_CACHE_TEST_PG', 'postgresql://postgres@127.0.0.1:5432/postgres')
MYSQL_ADMIN = os.environ.get('GLANCE_CACHE_TEST_MYSQL', 'root@127.0.0.1:3306')


def in_ci():
    return os.environ.get('CI', '').lower() in ('1', 'true', 'yes')


def unavailable(what, exc):
    """Skip with a clear reason on a developer machine; fail in CI, where it must run."""
    message = '%s is not reachable: %s' % (what, exc)
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


class ThrowawayDatabase:
    """A database created for one test session and dropped afterwards."""

    def __init__(self, backend):
        self.backend = backend
        self.name = 'gc_test_%s' % uuid.uuid4().hex[:12]
        self.url = None

    def create(self, tmp_dir):
        if self.backend == 'sqlite':
            self.url = 'sqlite:///%s' % os.path.join(tmp_dir, 'glance-cache.db')
        elif self.backend == 'postgresql':
            import psycopg2
            try:
                conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
            except psycopg2.OperationalError as exc:
                unavailable('PostgreSQL at %s' % PG_ADMIN_URL, exc)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute('CREATE DATABASE %s' % self.name)
            conn.close()
            self.url = 'postgresql+psycopg2://postgres@127.0.0.1:5432/%s' % self.name
        elif self.backend == 'mysql':
            import pymysql
            user, host = MYSQL_ADMIN.split('@')
            hostname, port = host.split(':')
            try:
                conn = pymysql.connect(host=hostname, port=int(port), user=user,
                                       connect_timeout=5)
            except pymysql.err.OperationalError as exc:
                unavailable('MariaDB at %s' % MYSQL_ADMIN, exc)
            with conn.cursor() as cur:
                cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % self.name)
            conn.close()
            self.url = 'mysql+pymysql://%s@%s/%s?charset=utf8mb4' % (user, host, self.name)
        return self.url

    def drop(self):
        if self.backend == 'postgresql':
            import psycopg2
            conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute('DROP DATABASE IF EXISTS %s WITH (FORCE)' % self.name)
            conn.close()
        elif self.backend == 'mysql':
            import pymysql
            user, host = MYSQL_ADMIN.split('@')
            hostname, port = host.split(':')
            conn = pymysql.connect(host=hostname, port=int(port), user=user)
            with conn.cursor() as cur:
                cur.execute('DROP DATABASE IF EXISTS %s' % self.name)
            conn.close()


class Node:
    """One glance-cache-api process with its own config, store and log."""

    def __init__(self, workdir, db_url, options=None, server_args=(), env=None):
        self.workdir = str(workdir)
        self.db_url = db_url
        self.options = options or {}
        self.server_args = list(server_args)
        self.env = env   # the server's environment; None: this process's
        self.proc = None
        self.url = None
        self.log_path = os.path.join(self.workdir, 'node.log')
        self.config_path = os.path.join(self.workdir, 'glance-cache.conf')
        self.store_dir = os.path.join(self.workdir, 'images')
        self.session = requests.Session()

    def write_config(self):
        sections = {'DEFAULT': {'bind_host': '127.0.0.1', 'bind_port': '0'}}
        if self.db_url is not None:  # None: the embedded defaults, relative to workdir
            sections['database'] = {'connection': self.db_url}
            sections['glance_store'] = {'filesystem_store_datadir': self.store_dir}
        for section, values in self.options.items():
            sections.setdefault(section, {}).update(values)
        lines = []
        for section, values in sections.items():
            lines.append('[%s]' % section)
            lines.extend('%s = %s' % (k, v) for k, v in values.items())
            lines.append('')
        with open(self.config_path, 'w') as f:
            f.write('\n'.join(lines))

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        self.write_config()
        # The server writes its log straight to the file: a pipe read by this
        # process would tie the server's pace to this process's threads.
        with open(self.log_path, 'ab') as log:
            start_offset = log.tell()
            self.proc = subprocess.Popen(
                [API_COMMAND, '--config-file', self.config_path, *self.server_args],
                cwd=self.workdir, env=self.env, stdout=log, stderr=log,
                start_new_session=True)

        def listening():
            with open(self.log_path, 'rb') as f:
                f.seek(start_offset)
                match = LISTENING.search(f.read().decode('utf-8', 'replace'))
            if match:
                self.url = match.group(1)
                return True
            if self.proc.poll() is not None:
                raise RuntimeError('glance-cache-api exited with status %s:\n%s'
                                   % (self.proc.returncode, self.log()))
            return False

        try:
            wait_for(listening, 'glance-cache-api to listen', timeout=START_TIMEOUT,
                     interval=0.02, error=RuntimeError)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError('glance-cache-api did not start: %s\n%s'
                               % (exc, self.log())) from None
        wait_for(lambda: self._answers(), 'the node to answer', timeout=START_TIMEOUT)
        return self

    def _answers(self):
        try:
            return requests.get(self.url + '/versions', timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self, sig=signal.SIGTERM):
        # Idle keep-alive connections would hold gunicorn's graceful stop.
        self.session.close()
        stop_process_group(self.proc, sig)

    def log(self, last=20000):
        """The node's log, its ``last`` characters (None: all of it)."""
        try:
            with open(self.log_path, errors='replace') as f:
                text = f.read()
        except OSError:
            return ''
        return text if last is None else text[-last:]

    def request(self, method, path, token='admin', headers=None, **kwargs):
        """An HTTP request to the node; ``token=None`` sends no X-Auth-Token."""
        all_headers = {}
        if token is not None:
            all_headers['X-Auth-Token'] = token
        all_headers.update(headers or {})
        kwargs.setdefault('timeout', 60)
        return self.session.request(method, self.url + path, headers=all_headers, **kwargs)

    def create_image(self, token='admin', **body):
        body.setdefault('name', 'image-%s' % uuid.uuid4().hex[:8])
        body.setdefault('disk_format', 'raw')
        body.setdefault('container_format', 'bare')
        resp = self.request('POST', '/v2/images', token=token, json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def upload(self, image_id, data, token='admin', headers=None):
        all_headers = {'Content-Type': 'application/octet-stream'}
        all_headers.update(headers or {})
        return self.request('PUT', '/v2/images/%s/file' % image_id, token=token,
                            headers=all_headers, data=data)

    def create_active_image(self, data, token='admin', **body):
        image = self.create_image(token=token, **body)
        resp = self.upload(image['id'], data, token=token)
        assert resp.status_code == 204, resp.text
        return self.request('GET', '/v2/images/%s' % image['id'], token=token).json()


class HeldWorkerLock:
    """Holds a node's caching-worker election lock, so that no process of it drains the queue.

    A node elects the process that runs its caching worker with an flock on
    ``<cache_dir>/worker.lock``; the others stand by. While a test holds the lock, images
    put in the queue stay queued, the one way to see the queue's state without racing the
    worker. Take it before the node starts; on ``release`` a standby takes over.
    """

    def __init__(self, cache_dir):
        import fcntl
        os.makedirs(cache_dir, exist_ok=True)
        self._fd = os.open(os.path.join(cache_dir, 'worker.lock'), os.O_RDWR | os.O_CREAT,
                           0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def child_processes(parent, command=None):
    """Pids of the processes ``parent`` started (those whose command line holds
    ``command``, if given)."""
    out = subprocess.run(['pgrep', '-P', str(parent)] + (['-f', command] if command else []),
                         capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def digest_processes(parent):
    """Pids of the fill digest processes (digester.py) that ``parent`` started."""
    return child_processes(parent, 'digester.py')


def stop_process_group(proc, sig=signal.SIGTERM, grace=30):
    """Send ``sig`` to the process group ``proc`` leads (started with
    start_new_session) and wait; SIGKILL if it is still there after ``grace`` s."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def wait_for(predicate, what, timeout=30, interval=0.05, error=AssertionError):
    """Poll ``predicate`` until it is true; raise ``error`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error('timed out after %ss waiting for %s' % (timeout, what))
        time.sleep(interval)


def chunks(data, size=1024 * 1024):
    """A generator over ``data`` so that requests sends it chunked."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def policy_file(path, rules):
    with open(path, 'w') as f:
        f.write(textwrap.dedent(''.join('"%s": "%s"\n' % item for item in rules.items())))
    return path


class OpenCounter:
    """Counts the opens of files in a directory with Linux inotify (IN_OPEN).

    A real count of how often the node opened an image in the store, which is
    how often it read it: glance_store's file backend opens the file per read.
    """

    IN_OPEN = 0x20
    IN_NONBLOCK = 0o4000

    def __init__(self, directory):
        import ctypes
        import ctypes.util
        self._libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
        self._fd = self._libc.inotify_init1(self.IN_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), 'inotify_init1 failed')
        if self._libc.inotify_add_watch(self._fd, os.fsencode(directory), self.IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), 'inotify_add_watch failed')
        self.opens = {}

    def poll(self):
        """Read pending events; return {file name: opens so far}."""
        import struct
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return self.opens
            offset = 0
            while offset < len(buf):
                _wd, _mask, _cookie, length = struct.unpack_from('iIII', buf, offset)
                name = buf[offset + 16:offset + 16 + length].rstrip(b'\0').decode()
                self.opens[name] = self.opens.get(name, 0) + 1
                offset += 16 + length

    def close(self):
        os.close(self._fd)
