"""One cache fill: stream image data into ``incomplete/<id>``, hash it on the
side, verify it against the image record, and commit it atomically.

The fill's thread reads the store and writes the file (from the filesystem
store's file, the kernel copies it); the digests are computed beside it
(hashing.py), for large images by processes of their own that hash the file
as it is written, so MD5, the multihash and the disk write proceed on
different cores at once. A fill holds at most a few chunks in memory
whatever the image's size.

Readers can follow a fill while it runs (``FillJob.follow``): they read the
bytes already written from their own descriptor of the incomplete file. A
fill that fails makes its followers fail too, so no client is handed a
complete-looking response built from unverified data.
"""

import contextlib
import errno
import fcntl
import logging
import os
import threading
import time

from glance_cache import errors, metrics
from glance_cache.cache import cpus, hashing

LOG = logging.getLogger(__name__)

FLUSH_EVERY = 64 * 1024 * 1024
# How much a fill asks the kernel to copy in one system call when it copies
# the image from the store's file. Each call's return takes the server's GIL
# back (from a request thread, it may be), so the fewer the better; but the
# fill sees a cancel only between calls. So a fill starts with calls of
# KERNEL_COPY_MIN bytes, asks twice as much after a call that took under half
# KERNEL_COPY_SECONDS, up to KERNEL_COPY_MAX, and half as much after one that
# took over twice that: from the page cache, calls of 64 MiB; from a slow
# disk, of 8 MiB, as long as before.
KERNEL_COPY_MIN = 8 * 1024 * 1024
KERNEL_COPY_MAX = 64 * 1024 * 1024
KERNEL_COPY_SECONDS = 0.05


class FillError(errors.GlanceCacheError):
    """A fill did not produce a committed entry."""

    code = 503
    title = 'Service Unavailable'


class FillCancelled(FillError):
    """The fill was cancelled (image deleted, entry removed, node stopping)."""


class VerificationFailed(FillError):
    """The data did not match the image record; it went to invalid/."""


class _Flusher(threading.Thread):
    """Writes a fill's data back to disk while the fill goes on.

    Without it every byte of a fill waits in the page cache for the final
    fsync, and that fsync alone takes as long as the disk needs for the whole
    image, after the hashing is done. Syncing every ``FLUSH_EVERY`` bytes in
    this thread overlaps the disk's work with the hashing; the final fsync
    then has little left to do.
    """

    def __init__(self, fd, confinement=cpus.UNCONFINED):
        super().__init__(name='fill-flusher', daemon=True)
        self._fd = fd
        self._confinement = confinement
        self._due = threading.Event()
        self._done = False
        self._flushed_at = 0

    def wrote(self, total):
        """Note that ``total`` bytes are written; sync once another FLUSH_EVERY are.

        The thread starts at the first sync: small fills never need it.
        """
        if total - self._flushed_at >= FLUSH_EVERY:
            self._flushed_at = total
            if not self.is_alive():
                self.start()
            self._due.set()

    def run(self):
        self._confinement.run(self._flush)

    def _flush(self):
        while True:
            self._due.wait()
            self._due.clear()
            if self._done:
                return
            try:
                os.fdatasync(self._fd)
            except OSError:
                return  # the fill's own fsync reports the error

    def finish(self):
        self._done = True
        self._due.set()
        if self.is_alive():
            self.join()


def verify(image, size, md5_hex, multihash_hex):
    """Raise VerificationFailed naming the first check the data fails."""
    if image.get('size') is not None and size != image['size']:
        raise VerificationFailed('size mismatch: the store gave %d bytes, the image '
                                 'record says %d' % (size, image['size']))
    if image.get('checksum') and md5_hex != image['checksum']:
        raise VerificationFailed('checksum mismatch: MD5 of the data is %s, the image '
                                 'record says %s' % (md5_hex, image['checksum']))
    if image.get('os_hash_value') and multihash_hex != image['os_hash_value']:
        raise VerificationFailed('%s mismatch: the data hashes to %s, the image record '
                                 'says %s' % (image['os_hash_algo'], multihash_hex,
                                              image['os_hash_value']))


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FillJob:
    """The fill of one image into one cache; see the module docstring."""

    RUNNING, DONE, FAILED, CANCELLED = 'running', 'done', 'failed', 'cancelled'

    def __init__(self, cache, image, confinement=None):
        self.cache = cache
        self.image = image
        self.image_id = image['id']
        self.size = image.get('size')
        self.bytes_done = 0
        self.state = self.RUNNING
        self.error = None
        self.started_at = time.time()
        self.finished_at = None
        # Notified at every chunk, for followers; _ended is for those who wait
        # for the outcome only, so that they are not woken at every chunk.
        self._cond = threading.Condition()
        self._ended = threading.Event()
        self._cancel = threading.Event()
        self._read_fd = None
        self._write_fd = None
        self._inode = None
        self.cancel_reason = None
        self.error_kind = None
        # Set once the store has given every byte: what is left (waiting for
        # the digests, the last sync, the commit) is local work, which no
        # store can stall (see the worker's stall check).
        self.received_all = False
        # The HashPipeline while the fill waits for its digests: a cancel
        # stops them rather than waiting for them (see cancel()).
        self._verifying = None
        # Where a failure would come from, for the fills_failed metric.
        self._stage = 'store'
        # Set when the worker gave up on the fill and counted it as stalled.
        self.abandoned = False
        # Called with no arguments, a context manager the commit runs inside;
        # it yields whether to commit at all. The caching worker sets one that
        # holds the queue's lock and checks the job's record is still there.
        self.commit_guard = lambda: contextlib.nullcontext(True)
        # Where the fill's threads run: the caching worker confines its
        # background fills (see cpus.py); a follower releases them.
        self.confinement = confinement or cpus.UNCONFINED
        self.path = cache.incomplete_path(self.image_id)

    # -- the writer ------------------------------------------------------------

    def open(self):
        """Create the incomplete file; errors.Conflict if another process fills it."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileExistsError:
            if not self.cache.remove_if_abandoned(self.path):
                raise errors.Conflict('Image %s is being cached by another process'
                                      % self.image_id) from None
            fd = os.open(self.path, flags, 0o600)
        # The lock tells other processes this fill is alive; it dies with us.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._write_fd = fd
        self._inode = os.fstat(fd).st_ino
        self._read_fd = os.open(self.path, os.O_RDONLY)

    def owns_path(self):
        """Whether ``path`` is still this job's file (an abandoned job's is not)."""
        try:
            return os.stat(self.path).st_ino == self._inode
        except FileNotFoundError:
            return False

    def run(self, open_source, descriptor_of=None):
        """Fill from ``open_source()`` (an iterable of bytes), verify and commit.

        ``descriptor_of(data)``, if given, names the local file behind the
        iterable ``open_source()`` returned, or returns None: the kernel
        then copies that file, unless ``[cache] kernel_copy`` is off (see
        ``_pieces``). Never raises: the outcome is ``state`` and ``error``.
        """
        self.confinement.run(self._run, open_source, descriptor_of)

    def _run(self, open_source, descriptor_of):
        metrics.FILLS_STARTED.inc()
        hashes = None
        flusher = _Flusher(self._write_fd, self.confinement)
        chunks = ()
        try:
            try:
                hashes = hashing.HashPipeline(self.image.get('os_hash_algo') or 'sha512',
                                              self.size, self._read_fd, self.confinement)
                chunks = open_source()
                source_fd = None
                if descriptor_of is not None and self.cache.kernel_copy and hashes.reads_file:
                    source_fd = descriptor_of(chunks)
                for count, chunk in self._pieces(chunks, source_fd):
                    metrics.FETCHED_BYTES.inc(count)
                    # The digests read the file back: their failures count as the disk's.
                    self._stage = 'disk'
                    if chunk is None:
                        hashes.advance(count)
                    else:
                        hashes.update(chunk)
                    self._stage = 'store'
                    with self._cond:
                        self.bytes_done += count
                        self._cond.notify_all()
                    flusher.wrote(self.bytes_done)
                    if self.size is not None and self.bytes_done > self.size:
                        raise VerificationFailed('size mismatch: the store gave more than '
                                                 'the %d bytes of the image record'
                                                 % self.size)
                self.received_all = True
            finally:
                close = getattr(chunks, 'close', None)
                if close is not None:
                    close()
                flusher.finish()
            self._stage = 'disk'
            size, md5_hex, multihash_hex = self._digests_of(hashes)
            hashes = None
            verify(self.image, size, md5_hex, multihash_hex)
            os.fsync(self._write_fd)
            with self.commit_guard() as wanted:
                if not wanted:
                    self.cancel('its caching job was removed')
                if self._cancel.is_set() or not self.owns_path():
                    raise FillCancelled(self._cancel_message())
                self.cache.commit(self, size)
            self._finish(self.DONE)
        except VerificationFailed as exc:
            self._fail(exc, quarantine=True)
        except FillCancelled as exc:
            self._fail(exc, state=self.CANCELLED)
        except Exception as exc:  # the store, the disk: recorded, never raised
            self._fail(exc)
        finally:
            if hashes is not None:
                hashes.abort()
            self._close_write()

    def _digests_of(self, hashes):
        """``hashes.finish()``, unless the fill is cancelled meanwhile: then
        the digests are stopped and FillCancelled raised.

        The digests may take long after the last byte came: on a node whose
        CPUs are busy with requests, their processes (at the lowest priority)
        wait for time left over.
        """
        with self._cond:
            self._verifying = hashes
        try:
            # A cancel from now on stops the digests (see cancel()); one
            # before is seen here.
            self._check_cancel()
            return hashes.finish()
        except hashing.DigestError:
            self._check_cancel()   # stopped by cancel(): that is the outcome
            raise
        finally:
            with self._cond:
                self._verifying = None

    def _pieces(self, chunks, source_fd):
        """Write the image to the file piece by piece, yielding ``(count, chunk)``
        for each piece once it is there.

        With ``source_fd``, a local file holding the image from its current
        position (the filesystem store's), the kernel copies it,
        KERNEL_COPY_MIN to KERNEL_COPY_MAX bytes a call, and ``chunk`` is
        None: the bytes never enter the process. Through Python, each MiB
        costs a read and a write, and the digests' notices, each taking the
        GIL back when it returns; each time, a request thread holding the
        GIL may keep the fill waiting, and the fill then takes it from the
        request. The kernel's copy takes it back once per 8 to 64 MiB.
        Where the kernel cannot copy between the two files, the bytes
        of ``chunks`` are written.
        """
        if source_fd is not None:
            for copy in (_copy_file_range, _sendfile):
                try:
                    yield from self._copied(copy, source_fd)
                    return
                except _NoKernelCopy as exc:
                    LOG.debug('Fill of image %s: %s', self.image_id, exc)
        for chunk in chunks:
            self._check_cancel()
            if chunk:
                self._stage = 'disk'
                _write_all(self._write_fd, chunk)
                self._stage = 'store'
                yield len(chunk), chunk

    def _copied(self, copy, source_fd):
        """Copy by ``copy`` from ``source_fd`` to the end, yielding ``(count, None)``
        per call; _NoKernelCopy, before any byte is copied, if it cannot."""
        copied = 0
        size = KERNEL_COPY_MIN
        while True:
            self._check_cancel()
            started = _now()
            try:
                count = copy(source_fd, self._write_fd, size)
            except OSError as exc:
                if copied == 0 and exc.errno in _NO_KERNEL_COPY:
                    raise _NoKernelCopy('%s cannot copy between the store\'s file and the '
                                        'cache\'s: %s' % (copy.__name__.lstrip('_'), exc)
                                        ) from None
                if exc.errno in _DISK_ERRORS:
                    self._stage = 'disk'
                raise
            if not count:
                return
            copied += count
            if count == size:
                size = next_copy_size(size, _now() - started)
            yield count, None

    def _check_cancel(self):
        if self._cancel.is_set():
            raise FillCancelled(self._cancel_message())

    def _cancel_message(self):
        return 'The fill of image %s was cancelled%s' % (
            self.image_id, ': %s' % self.cancel_reason if self.cancel_reason else '')

    def _fail(self, exc, quarantine=False, state=FAILED):
        self.error = str(exc) or exc.__class__.__name__
        self.error_kind = type(exc)
        if state == self.FAILED:
            LOG.warning('Cache fill of image %s failed: %s', self.image_id, self.error)
        if self.owns_path():
            if quarantine:
                self.cache.quarantine(self.path, self.image_id)
            else:
                self.discard_file()
        self._finish(state)

    def _finish(self, state):
        with self._cond:
            self.state = state
            self.finished_at = time.time()
            if self._read_fd is not None:
                os.close(self._read_fd)
                self._read_fd = None
            self._cond.notify_all()
        self._ended.set()
        self._count()
        self.cache.fill_finished(self)

    def _count(self):
        if self.abandoned:
            return  # counted as stalled when the worker gave up on it
        if self.state == self.DONE:
            metrics.FILLS_SUCCEEDED.inc()
            metrics.FILL_DURATION.observe(max(self.finished_at - self.started_at, 0.0))
        elif self.state == self.CANCELLED:
            metrics.FILLS_CANCELLED.inc()
        else:
            reason = ('verification' if self.error_kind is VerificationFailed
                      else self._stage)
            metrics.FILLS_FAILED.labels(reason=reason).inc()

    def _close_write(self):
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None

    def discard_file(self):
        """Unlink the incomplete file if it is still this job's."""
        if self.owns_path():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def cancel(self, reason=None):
        """Ask the fill to stop; it does so before writing its next chunk, or at
        once if it is waiting for its digests."""
        if reason and not self.cancel_reason:
            self.cancel_reason = reason
        self._cancel.set()
        with self._cond:
            verifying = self._verifying
        if verifying is not None:
            verifying.interrupt()

    @property
    def cancelled(self):
        return self._cancel.is_set()

    def wait(self, timeout=None):
        """Block until the fill ends; return its final state."""
        self._ended.wait(timeout)
        return self.state

    # -- followers -------------------------------------------------------------

    def follow(self, chunk_size):
        """A FillFollower over the image's bytes as the fill writes them.

        None when the fill has already ended (read the committed entry then).
        Iterating raises FillError if the fill fails before the end.
        """
        with self._cond:
            if self._read_fd is None:
                return None
            fd = os.dup(self._read_fd)
        # A client waits for these bytes: the fill is no longer background work.
        self.confinement.release()
        return FillFollower(self, fd, chunk_size)

    def _readable(self):
        """Bytes a follower may read now: all once verified, else all but the last.

        Holding back the last byte until verification passes means a client
        following a fill of bad data gets a truncated response, which every
        HTTP client reports as an error, never a complete-looking wrong one.
        """
        if self.state == self.DONE or self.size is None:
            return self.bytes_done
        return min(self.bytes_done, self.size - 1)

    def wait_for_bytes(self, offset):
        """Block until more than ``offset`` bytes are readable or the fill ends;
        return ``(readable bytes, state)``."""
        with self._cond:
            self._cond.wait_for(lambda: self._readable() > offset
                                or self.state != self.RUNNING)
            return self._readable(), self.state


class FillFollower:
    """A reader of a running fill, with its own descriptor of the incomplete file.

    The descriptor outlives the rename of the file into the cache, so a
    follower reads to the end whatever happens to the path.
    """

    def __init__(self, job, fd, chunk_size):
        self._job = job
        self._fd = fd
        self._chunk_size = chunk_size

    def __iter__(self):
        job, fd, offset = self._job, self._fd, 0
        try:
            while True:
                available, state = job.wait_for_bytes(offset)
                if offset < available:
                    data = os.pread(fd, min(self._chunk_size, available - offset), offset)
                    if not data:
                        raise FillError('The incomplete file of image %s shrank'
                                        % job.image_id)
                    offset += len(data)
                    yield data
                elif state == job.DONE:
                    return
                else:
                    raise FillError('Caching image %s failed: %s' % (job.image_id,
                                                                     job.error))
        finally:
            self.close()

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _NoKernelCopy(Exception):
    """The kernel cannot copy between these two files this way."""


# What a kernel copy fails with, before any byte is copied, where it cannot
# copy between the two files: no such call, files on different file systems
# (copy_file_range on Linux 5.19 and later), or a file system that refuses.
_NO_KERNEL_COPY = frozenset({errno.ENOSYS, errno.EXDEV, errno.EOPNOTSUPP, errno.EINVAL})
# What says the cache's disk, not the store, failed.
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


_now = time.monotonic


def next_copy_size(size, seconds):
    """The size of the next kernel copy after one of ``size`` bytes took ``seconds``.

    >>> MiB = 1024 * 1024
    >>> next_copy_size(8 * MiB, 0.004) // MiB, next_copy_size(64 * MiB, 0.004) // MiB
    (16, 64)
    >>> next_copy_size(32 * MiB, 0.2) // MiB, next_copy_size(8 * MiB, 2.0) // MiB
    (16, 8)
    >>> next_copy_size(32 * MiB, KERNEL_COPY_SECONDS) // MiB
    32
    """
    if seconds < KERNEL_COPY_SECONDS / 2:
        return min(size * 2, KERNEL_COPY_MAX)
    if seconds > KERNEL_COPY_SECONDS * 2:
        return max(size // 2, KERNEL_COPY_MIN)
    return size


def _copy_file_range(source_fd, fd, count):
    if not hasattr(os, 'copy_file_range'):
        raise OSError(errno.ENOSYS, 'os.copy_file_range is not available')
    return os.copy_file_range(source_fd, fd, count)


def _sendfile(source_fd, fd, count):
    return os.sendfile(fd, source_fd, None, count)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
