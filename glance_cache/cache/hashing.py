"""HashPipeline: the size, MD5 and multihash of what a fill writes.

A fill verifies all three before it commits. Computing the two digests is
most of a fill's CPU (each takes a core at full speed), so where it runs
decides what the fill costs the rest of the node:

- small images (under ``INLINE_HASH_LIMIT``) are hashed in the fill's own
  thread: starting anything would cost more than it saves;
- larger ones by one process per digest (``digester.py``), hashing the
  bytes the fill has written to its file, mapped, not copied. Outside the
  server process the hashing takes no GIL from the threads answering
  requests, the two digests can run on two cores, and what is verified is
  what the file holds;
- under eventlet, or where ``sys.executable`` is not a Python interpreter
  (a server embedding one), by one thread per digest fed through a bounded
  queue, so a fill still holds only a few chunks in memory.

All three follow ``confinement`` (cpus.Confinement): the caching worker's
background fills keep off the CPUs left to requests.
"""

import hashlib
import os
import queue
import subprocess
import sys
import threading

from glance_cache import errors
from glance_cache.cache import cpus, digester

INLINE_HASH_LIMIT = 8 * 1024 * 1024
HASH_QUEUE_DEPTH = 4
# Digest processes run at the lowest priority. They share their CPUs with
# the fill's own thread, which holds the server's GIL now and then: were
# they its equals, the scheduler would sometimes stop that thread while it
# holds the GIL, and requests would wait for a digester's time slice.
DIGEST_NICENESS = 19
DIGESTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'digester.py')


class DigestError(errors.GlanceCacheError):
    """A digest could not be computed (its process failed or died)."""

    code = 503
    title = 'Service Unavailable'


def _interpreter():
    """The Python to run digester.py with, or None (eventlet, an embedded Python)."""
    if cpus.green_threads():
        return None
    executable = sys.executable
    if executable and os.path.basename(executable).startswith('python'):
        return executable
    return None


class _InlineDigest:
    """Hashed in the caller's thread."""

    def __init__(self, algorithm):
        self._hasher = hashlib.new(algorithm)

    def update(self, chunk, total):
        self._hasher.update(chunk)

    def finish(self, total):
        return self._hasher.hexdigest()

    def abort(self):
        pass


class _ThreadDigest(threading.Thread):
    """Hashed in a thread of its own, fed through a bounded queue."""

    def __init__(self, algorithm, confinement):
        super().__init__(name='digest-%s' % algorithm, daemon=True)
        self._hasher = hashlib.new(algorithm)
        self._queue = queue.Queue(HASH_QUEUE_DEPTH)
        self._confinement = confinement
        self.start()

    def run(self):
        self._confinement.run(self._hash)

    def _hash(self):
        update, get = self._hasher.update, self._queue.get
        while True:
            chunk = get()
            if chunk is None:
                return
            update(chunk)

    def update(self, chunk, total):
        self._queue.put(chunk)

    def finish(self, total):
        self._queue.put(None)
        self.join()
        return self._hasher.hexdigest()

    def abort(self):
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            # Drain one slot so the thread sees the end soon.
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put(None)


class _ProcessDigest:
    """Hashed by digester.py reading the file back; see its docstring."""

    def __init__(self, python, algorithm, fd, confinement):
        self._algorithm = algorithm
        self._confinement = confinement
        self._proc = subprocess.Popen(
            [python, '-I', '-S', DIGESTER, str(fd), algorithm, str(DIGEST_NICENESS)],
            pass_fds=(fd,),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._control = self._proc.stdin.fileno()
        self._ended = False
        confinement.adopt(self._proc.pid)

    def update(self, chunk, total):
        try:
            os.write(self._control, total.to_bytes(digester.COUNT, 'little'))
        except OSError:
            # Its reason, if it gave one, is on its standard error.
            self.finish(total)
            raise

    def finish(self, total):
        self._confinement.disown(self._proc.pid)
        self._ended = True
        try:
            os.write(self._control, digester.END)
        except OSError:
            pass  # it died: its status says why
        out, err = self._proc.communicate()
        reason = err.decode('utf-8', 'replace').strip()
        status = self._proc.returncode
        if status != 0:
            raise DigestError('The %s digest process of the fill failed (%s)%s' % (
                self._algorithm,
                'killed by signal %d' % -status if status < 0 else 'exit status %d' % status,
                ': %s' % reason if reason else ''))
        try:
            hexdigest, size = out.decode('ascii').split()
            size = int(size)
        except ValueError:
            raise DigestError('The %s digest process of the fill printed %r'
                              % (self._algorithm, out)) from None
        if size != total:
            raise DigestError('The %s digest process of the fill hashed %d bytes, not %d'
                              % (self._algorithm, size, total))
        return hexdigest

    def interrupt(self):
        # Popen's signalling is safe beside the fill thread's communicate().
        self._proc.kill()

    def abort(self):
        if self._ended:
            return
        self._ended = True
        self._confinement.disown(self._proc.pid)
        self._proc.kill()
        self._proc.communicate()  # reaps it and closes the pipes


class HashPipeline:
    """Size, MD5 and the image's multihash of a fill; see the module docstring.

    ``update(chunk)`` is called once ``chunk`` is written to the file open
    as ``fd`` (the process digests read it from there); ``advance(count)``
    instead, where they all do, once bytes are in the file that the caller
    never held.
    """

    def __init__(self, multihash_algo, expected_size=None, fd=None,
                 confinement=cpus.UNCONFINED):
        self._multihash_algo = multihash_algo
        self.size = 0
        self._digests = {}
        small = expected_size is not None and expected_size < INLINE_HASH_LIMIT
        python = _interpreter()
        try:
            # One digest per algorithm, should the multihash be MD5 too.
            for algorithm in dict.fromkeys(('md5', multihash_algo)):
                if small:
                    digest = _InlineDigest(algorithm)
                elif python is not None and fd is not None:
                    digest = _ProcessDigest(python, algorithm, fd, confinement)
                else:
                    digest = _ThreadDigest(algorithm, confinement)
                self._digests[algorithm] = digest
        except BaseException:
            self.abort()
            raise
        # Whether every digest reads the data back from the file, so that
        # ``advance`` can stand for ``update``.
        self.reads_file = all(isinstance(digest, _ProcessDigest)
                              for digest in self._digests.values())

    def update(self, chunk):
        """``chunk`` has been written to the file."""
        self._grow(len(chunk), chunk)

    def advance(self, count):
        """``count`` more bytes are in the file, written without passing through
        the caller (only where ``reads_file``)."""
        if not self.reads_file:
            raise ValueError('these digests need the bytes themselves')
        self._grow(count, None)

    def _grow(self, count, chunk):
        self.size += count
        try:
            for digest in self._digests.values():
                digest.update(chunk, self.size)
        except BaseException:
            self.abort()
            raise

    def finish(self):
        """``(size, md5_hex, multihash_hex)`` once every byte is hashed."""
        hexdigests = {}
        try:
            for algorithm, digest in list(self._digests.items()):
                hexdigests[algorithm] = digest.finish(self.size)
                del self._digests[algorithm]
        finally:
            self.abort()
        return self.size, hexdigests['md5'], hexdigests[self._multihash_algo]

    def interrupt(self):
        """From another thread: make a ``finish()`` waiting for digest processes
        raise DigestError now, by ending those processes.

        Digests in the caller's thread or in threads of this process are not
        stopped: they hash at full speed, on the process's CPUs.
        """
        for digest in list(self._digests.values()):
            interrupt = getattr(digest, 'interrupt', None)
            if interrupt is not None:
                interrupt()

    def abort(self):
        """Stop whatever digests are still running."""
        while self._digests:
            _, digest = self._digests.popitem()
            digest.abort()
