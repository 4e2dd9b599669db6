"""The durable caching queue of one node: a job record per image, as files.

``<cache_dir>/queue/<image id>`` holds one JSON record per image the node was
asked to cache: its state (queued, caching, cached, failed), attempts, times,
bytes done and last error. Records are replaced atomically (write, fsync,
rename); every read-modify-write holds ``queue/.lock`` (flock), so any
process of the node may enqueue while one process drains. FIFO order is the
order of ``queued_at``. Queued and caching records survive restarts: the
next drainer resumes them.

Other processes wake the drainer through a datagram socket
(``queue/wakeup.sock``); a wake-up that is lost costs at most the drainer's
poll interval.
"""

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import uuid

QUEUED, CACHING, CACHED, FAILED = 'queued', 'caching', 'cached', 'failed'
PENDING = (QUEUED, CACHING)
STATES = (QUEUED, CACHING, CACHED, FAILED)

WAKEUP_SOCKET = 'wakeup.sock'


def _is_image_id(name):
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


def new_record(image_id, size, node):
    return {'image_id': image_id, 'state': QUEUED, 'size': size, 'bytes_done': 0,
            'queued_at': time.time(), 'started_at': None, 'finished_at': None,
            'attempts': 0, 'last_error': None, 'next_attempt_at': 0.0, 'node': node}


class JobQueue:
    """Job records under ``<cache_dir>/queue``; see the module docstring."""

    def __init__(self, cache_dir, node):
        self.dir = os.path.join(cache_dir, 'queue')
        os.makedirs(self.dir, exist_ok=True)
        self.node = node
        self._lock_path = os.path.join(self.dir, '.lock')
        self._thread_lock = threading.RLock()
        self.wakeup_path = os.path.join(self.dir, WAKEUP_SOCKET)
        # Set by the worker when this process drains: wake it without a socket.
        self.local_wakeup = None

    @contextlib.contextmanager
    def locked(self):
        """Hold the queue's lock across the node's threads and processes."""
        with self._thread_lock:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _path(self, image_id):
        if not _is_image_id(image_id):
            raise ValueError('not an image id: %r' % (image_id,))
        return os.path.join(self.dir, image_id)

    def get(self, image_id):
        """The record of ``image_id``, or None."""
        try:
            with open(self._path(image_id)) as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def put(self, record):
        """Write ``record`` atomically (callers hold ``locked()``)."""
        path = self._path(record['image_id'])
        tmp = '%s.%s.tmp' % (path, uuid.uuid4().hex[:8])
        with open(tmp, 'w') as f:
            json.dump(record, f)
        os.replace(tmp, path)

    def update(self, image_id, **changes):
        """Change fields of a record if it exists; return it, or None."""
        with self.locked():
            record = self.get(image_id)
            if record is None:
                return None
            record.update(changes)
            self.put(record)
            return record

    def remove(self, image_id):
        """Drop the record of ``image_id``; True if there was one."""
        with self.locked():
            try:
                os.unlink(self._path(image_id))
                return True
            except FileNotFoundError:
                return False

    def all(self):
        """Every record, oldest queued first."""
        records = []
        for name in os.listdir(self.dir):
            if _is_image_id(name):
                record = self.get(name)
                if record is not None:
                    records.append(record)
        records.sort(key=lambda r: (r['queued_at'], r['image_id']))
        return records

    def enqueue(self, image_id, size):
        """Queue ``image_id`` unless it is queued or caching already.

        Returns ``(record, added)``. A failed record, or a cached one whose
        entry has left the cache (the caller checks the cache first), is
        queued afresh.
        """
        with self.locked():
            record = self.get(image_id)
            if record is not None and record['state'] in PENDING:
                return record, False
            record = new_record(image_id, size, self.node)
            self.put(record)
        self.wake()
        return record, True

    def claim(self, now=None):
        """The oldest queued record that is due, marked caching; or None.

        Also returns the earliest time a not-yet-due record becomes due.
        """
        now = now or time.time()
        with self.locked():
            next_due = None
            for record in self.all():
                if record['state'] != QUEUED:
                    continue
                if record['next_attempt_at'] > now:
                    next_due = min(next_due or record['next_attempt_at'],
                                   record['next_attempt_at'])
                    continue
                record.update(state=CACHING, started_at=now, finished_at=None,
                              bytes_done=0, attempts=record['attempts'] + 1)
                self.put(record)
                return record, next_due
            return None, next_due

    def requeue_caching(self):
        """Return every caching record to queued (a new drainer resumes them)."""
        with self.locked():
            for record in self.all():
                if record['state'] == CACHING:
                    record.update(state=QUEUED, bytes_done=0, started_at=None,
                                  attempts=max(record['attempts'] - 1, 0))
                    self.put(record)

    def clear(self, states):
        """Drop the records in ``states``; their ids."""
        removed = []
        with self.locked():
            for record in self.all():
                if record['state'] in states:
                    os.unlink(self._path(record['image_id']))
                    removed.append(record['image_id'])
        return removed

    def wake(self):
        """Tell the drainer, in whatever process it runs, that there is work."""
        if self.local_wakeup is not None:
            self.local_wakeup()
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.sendto(b'w', self.wakeup_path)
        except OSError:
            pass  # no drainer listening, or its buffer is full: it polls anyway
        finally:
            sock.close()
