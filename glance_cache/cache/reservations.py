"""Bytes reserved by running fills, shared by the processes of one node.

Each ``ImageCache`` keeps the total its own fills reserve in a file of
``<cache_dir>/reserved/``, named by its process id and a random tag, and holds
an exclusive flock on that file for as long as it lives. Every other cache of
the node adds up the files whose flock is held; a file whose lock nobody
holds belongs to a process that died, and is removed.

Reading the others' totals, evicting and reserving happen under one more
flock (``reserved/.lock``), so two processes cannot both find room for the
same free bytes: with several server processes per node (``workers``), the
cache still never passes ``max_size``.
"""

import contextlib
import fcntl
import os
import uuid

from glance_cache.cache import nodelock

LOCK_NAME = '.lock'
# Totals are written at a fixed width, so a rewrite never leaves a longer
# old value's tail behind.
WIDTH = 20


class Reservations:
    """This cache's reserved bytes, published beside every other process's."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self._lock = nodelock.NodeLock(os.path.join(directory, LOCK_NAME))
        self._pid = None
        self._own_fd = None
        self._own_name = None
        self.own = 0

    def _open_own(self):
        """Create and lock this process's file (after a fork, anew)."""
        if self._pid == os.getpid():
            return
        # Under the shared lock: no other process can take the new file for a
        # dead one's before it is locked.
        with self._lock.held():
            name = '%d-%s' % (os.getpid(), uuid.uuid4().hex[:8])
            fd = os.open(os.path.join(self.dir, name),
                         os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.pwrite(fd, b'%0*d' % (WIDTH, self.own), 0)
        self._own_fd, self._own_name, self._pid = fd, name, os.getpid()

    @contextlib.contextmanager
    def locked(self):
        """Hold the node-wide lock over reading, evicting and reserving."""
        self._open_own()
        with self._lock.held():
            yield

    def others(self):
        """Bytes reserved by the node's other caches (``locked()`` held)."""
        total = 0
        for name in os.listdir(self.dir):
            if name == LOCK_NAME or name == self._own_name:
                continue
            path = os.path.join(self.dir, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    # Held: a live process's total.
                    try:
                        total += int(os.pread(fd, WIDTH, 0) or b'0')
                    except ValueError:
                        pass
                else:
                    os.unlink(path)   # nobody holds it: its process is gone
            finally:
                os.close(fd)
        return total

    def total(self):
        """Bytes reserved by every cache of the node (``locked()`` held)."""
        return self.own + self.others()

    def add(self, size):
        """Reserve ``size`` more bytes, or release them if negative (``locked()`` held)."""
        self.own += size
        os.pwrite(self._own_fd, b'%0*d' % (WIDTH, self.own), 0)

    def close(self):
        """Remove this process's file; the lock goes with the descriptor."""
        if self._pid != os.getpid():
            return
        try:
            os.unlink(os.path.join(self.dir, self._own_name))
        except FileNotFoundError:
            pass
        os.close(self._own_fd)
        self._lock.close()
        self._pid = self._own_fd = self._own_name = None
