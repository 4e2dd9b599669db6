"""A lock held across the processes of one node: flock on a file.

flock belongs to an open file description, so each process opens the file
once (anew after a fork, never inheriting the parent's) and keeps it open.
Threads of one process must be kept apart by the caller: flock does not.
"""

import contextlib
import fcntl
import os


class NodeLock:
    """An exclusive flock on ``path``, one descriptor per process."""

    def __init__(self, path):
        self.path = path
        self._fd = None
        self._pid = None

    @contextlib.contextmanager
    def held(self):
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self):
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None
