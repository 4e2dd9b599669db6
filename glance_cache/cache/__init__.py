"""The node-local image cache: ``ImageCache`` is what the API and the worker call.

Layout of ``[cache] cache_dir``::

    <image id>          committed, verified image data
    incomplete/<id>     fills in progress (locked by the filling process)
    invalid/<id>        data that failed verification, kept for inspection
    reserved/           bytes reserved by each process's running fills
    cache.db            metadata of the sqlite driver

Every image id is checked to be a canonical UUID before a path is built from
it, so no request can name a file outside the cache directory.

Size: fills reserve their image's size before they start. When committed
entries plus reservations would pass ``max_size``, the least recently accessed
entries not being read are evicted until the total is at ``low_watermark``;
an image that cannot fit is not cached (the download streams from the store).
Reservations count across the node's processes (see ``reservations``).
Pinned entries (``pinned_ids``) are never evicted either.

Several nodes: ``listener`` (a ``CacheListener``) hears of every entry
committed and removed, after the cache's lock is released, so that the
shared database can say which node holds what.
"""

import collections
import logging
import os
import threading

from glance_cache import errors, ids, metrics
from glance_cache.cache import drivers, evictor, fill, reservations

LOG = logging.getLogger(__name__)

INCOMPLETE = 'incomplete'
INVALID = 'invalid'
RESERVED = 'reserved'


class CacheFull(errors.GlanceCacheError):
    """The image cannot fit in the cache, now or ever."""

    code = 507
    title = 'Insufficient Storage'


def _check_id(image_id):
    if ids.is_canonical(image_id):
        return image_id
    raise errors.ImageNotFound(None)


class CachedFile:
    """An open committed entry, read from ``offset`` for ``length`` bytes.

    It is a file-like object for ``wsgi.file_wrapper`` (``read``, ``fileno``,
    ``close``): servers that can use sendfile send from the descriptor's
    position for the response's Content-Length, the others call ``read``,
    which never goes past the range. Closing it releases the entry for
    eviction.
    """

    def __init__(self, cache, image_id, fileobj, size):
        self._cache = cache
        self.image_id = image_id
        self.file = fileobj
        self.size = size
        self._remaining = size
        self._closed = False

    def seek_range(self, offset, length):
        self.file.seek(offset)
        self._remaining = length

    def fileno(self):
        return self.file.fileno()

    def read(self, size=-1):
        if size < 0 or size > self._remaining:
            size = self._remaining
        data = self.file.read(size) if size else b''
        self._remaining -= len(data)
        return data

    def close(self):
        if not self._closed:
            self._closed = True
            self.file.close()
            self._cache._release(self.image_id)


class CacheListener:
    """What the cache tells about its entries; this one listens to nothing."""

    def entry_added(self, image_id, size):
        """``image_id`` was committed with ``size`` bytes."""

    def entries_removed(self, image_ids):
        """``image_ids`` left the cache (deleted, evicted or cleared)."""

    def pinned_ids(self):
        """The ids eviction must keep: the images pinned to this node.

        Called without the cache's lock held: it may read the database.
        """
        return frozenset()


class ImageCache:
    """The cache of one node: lookups, fills, eviction and clean-up."""

    def __init__(self, conf):
        cache_conf = conf.cache
        self.dir = os.path.abspath(cache_conf.cache_dir)
        self.incomplete_dir = os.path.join(self.dir, INCOMPLETE)
        self.invalid_dir = os.path.join(self.dir, INVALID)
        for path in (self.dir, self.incomplete_dir, self.invalid_dir):
            os.makedirs(path, exist_ok=True)
        self.max_size = cache_conf.max_size
        self.low_watermark = int(cache_conf.max_size * cache_conf.low_watermark)
        self.stall_time = cache_conf.stall_time
        self.chunk_size = cache_conf.chunk_size
        self.kernel_copy = cache_conf.kernel_copy
        self.driver = drivers.load(cache_conf.driver, self.dir)
        self._lock = threading.Lock()
        self._readers = collections.Counter()
        self._fills = {}
        # Bytes reserved by the running fills of this and the node's other
        # processes; changed and read under the cache's lock and its own.
        self._reserved = reservations.Reservations(os.path.join(self.dir, RESERVED))
        self._removed = []
        # Descriptors of the files removed under the lock, closed (and the
        # files freed) once it is released: see _remove_committed.
        self._doomed = []
        self.listener = CacheListener()
        self.clean()
        self.driver.reconcile(self._committed_files())

    # -- paths -----------------------------------------------------------------

    def path(self, image_id):
        return os.path.join(self.dir, _check_id(image_id))

    def incomplete_path(self, image_id):
        return os.path.join(self.incomplete_dir, _check_id(image_id))

    def _committed_files(self):
        present = {}
        with os.scandir(self.dir) as it:
            for item in it:
                try:
                    _check_id(item.name)
                except errors.NotFound:
                    continue
                if item.is_file(follow_symlinks=False):
                    present[item.name] = item.stat().st_size
        return present

    # -- lookups ---------------------------------------------------------------

    def get(self, image_id):
        """The CacheEntry of a committed image, or None."""
        return self.driver.get(_check_id(image_id))

    def list(self):
        return self.driver.list()

    def version(self):
        """Changes whenever an entry does (see CacheDriver.version); None if unknown."""
        return self.driver.version()

    def changes(self, since):
        """The entries changed since an earlier call (see CacheDriver.changes)."""
        return self.driver.changes(since)

    def total_size(self):
        return self.driver.total_size()

    def open(self, image_id):
        """A CachedFile for a committed image (counting a hit), or None."""
        path = self.path(image_id)
        if self.driver.get(image_id) is None:
            return None
        with self._lock:
            self._readers[image_id] += 1
        try:
            fileobj = open(path, 'rb', buffering=0)
        except FileNotFoundError:
            self._release(image_id)
            self.driver.forget(image_id)
            self.listener.entries_removed([image_id])
            return None
        self.driver.hit(image_id)
        return CachedFile(self, image_id, fileobj, os.fstat(fileobj.fileno()).st_size)

    def _release(self, image_id):
        with self._lock:
            self._readers[image_id] -= 1
            if self._readers[image_id] <= 0:
                del self._readers[image_id]

    # -- fills -----------------------------------------------------------------

    def current_fill(self, image_id):
        with self._lock:
            return self._fills.get(image_id)

    def begin_fill(self, image, confinement=None):
        """Register and open a FillJob for an active image, reserving its size.

        Returns ``(job, started)``: the running job of this process for the
        image if there is one (``started`` False), else a new opened job
        whose threads keep to ``confinement`` (a cpus.Confinement) until a
        client follows it.
        Raises CacheFull if it cannot fit, errors.Conflict if another process
        fills it.
        """
        image_id = _check_id(image['id'])
        size = image.get('size') or 0
        pinned = self.listener.pinned_ids()  # may read the database: not under the lock
        try:
            with self._lock:
                job = self._fills.get(image_id)
                if job is not None:
                    return job, False
                if size > self.max_size:
                    raise CacheFull('Image %s (%d bytes) is larger than the whole cache '
                                    '(max_size %d bytes)' % (image_id, size, self.max_size))
                with self._reserved.locked():
                    # May evict some entries before it finds the rest in use.
                    self._make_room(size, pinned)
                    job = fill.FillJob(self, image, confinement)
                    self._fills[image_id] = job
                    self._reserved.add(size)
            try:
                job.open()
            except BaseException:
                with self._lock, self._reserved.locked():
                    self._fills.pop(image_id, None)
                    self._reserved.add(-size)
                raise
        finally:
            self._notify_removed()
        return job, True

    def _make_room(self, size, pinned):
        """Evict (both locks held) so ``size`` more bytes fit; CacheFull if they cannot.

        ``pinned`` ids are not evicted.
        """
        reserved = self._reserved.total()
        used = self.driver.total_size() + reserved
        if used + size <= self.max_size:
            return
        # Down to the low watermark, or lower if the new image needs more room.
        target = max(min(self.low_watermark, self.max_size - size) - reserved, 0)
        committed = used - reserved
        protected = self._protected(pinned)
        for entry in evictor.choose_victims(self.driver.list(), committed - target,
                                            protected):
            self._evict(entry)
        if self.driver.total_size() + reserved + size > self.max_size:
            raise CacheFull('No room for %d more bytes in the cache: the entries in use '
                            'fill it' % size)

    def commit(self, job, size):
        """Publish a verified fill (called by the job): metadata, rename, fsync.

        Under the cache's lock, so that a delete either cancels the job before
        this point or removes the entry after it, never loses to it.
        """
        final = self.path(job.image_id)
        with self._lock:
            if job.cancelled or not job.owns_path():
                raise fill.FillCancelled('The fill of image %s was cancelled' % job.image_id)
            self.driver.before_commit(job.path, job.image_id, size)
            os.rename(job.path, final)
            # Only the new name must survive a crash; a stale incomplete/ entry
            # left by one is cleaned at the next start.
            fill._fsync_dir(self.dir)
            self.driver.after_commit(job.image_id, size)
        LOG.info('Cached image %s (%d bytes)', job.image_id, size)
        self.listener.entry_added(job.image_id, size)

    def abandon(self, job, reason):
        """Give up on a fill whose thread may be stuck (a store read that hangs).

        The job is cancelled and forgotten at once: its reservation is freed
        and its incomplete file removed, so a retry can start afresh; the stuck
        thread cleans up after itself if it ever wakes.
        """
        job.abandoned = True
        metrics.FILLS_FAILED.labels(reason='stalled').inc()
        job.cancel(reason)
        with self._lock, self._reserved.locked():
            if self._fills.get(job.image_id) is job:
                del self._fills[job.image_id]
                self._reserved.add(-(job.size or 0))
        job.discard_file()

    def fill_finished(self, job):
        pinned = self.listener.pinned_ids()
        with self._lock, self._reserved.locked():
            if self._fills.get(job.image_id) is job:
                del self._fills[job.image_id]
                self._reserved.add(-(job.size or 0))
            try:
                self._make_room(0, pinned)   # nothing to do unless over max_size
            except CacheFull as exc:
                LOG.warning('Cache over its size after a fill: %s', exc)
        self._notify_removed()

    def quarantine(self, path, image_id):
        """Move failed data to invalid/ so nothing serves it and people can look."""
        try:
            os.replace(path, os.path.join(self.invalid_dir, _check_id(image_id)))
        except FileNotFoundError:
            pass

    def remove_if_abandoned(self, path):
        """Remove an incomplete file whose filler died; True if it was removed."""
        if evictor.is_abandoned(path, self.stall_time):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            return True
        return False

    # -- removal ---------------------------------------------------------------

    def _protected(self, pinned):
        """Ids eviction must not touch (lock held): read, being filled, or ``pinned``."""
        return set(self._readers) | set(self._fills) | set(pinned)

    def _remove_committed(self, image_id):
        """Remove an entry (lock held); listeners hear of it at ``_notify_removed``.

        The file is unlinked here but freed there, after the lock is released:
        the file system frees an unlinked file's blocks when its last
        descriptor is closed, and for an image of gigabytes on a busy disk
        that takes a second or more (ext4 mounted with ``discard`` and no
        journal waits for the discard of every extent). Under the lock, every
        download and every fill of the node would wait for it.
        """
        path = self.path(image_id)
        try:
            # Held open across the unlink: the closing frees the blocks.
            self._doomed.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            pass   # gone already, or not readable: then freed by the unlink
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        self.driver.forget(image_id)
        self._removed.append(image_id)

    def _evict(self, entry):
        """Evict an entry to make room (lock held)."""
        self._remove_committed(entry.image_id)
        metrics.EVICTIONS.inc()
        metrics.EVICTED_BYTES.inc(entry.size)
        LOG.info('Evicted image %s (%d bytes) from the cache', entry.image_id, entry.size)

    def _notify_removed(self):
        """Free the files removed under the lock and tell the listener (lock not held)."""
        with self._lock:
            removed, self._removed = self._removed, []
            doomed, self._doomed = self._doomed, []
        for fd in doomed:
            os.close(fd)
        if removed:
            self.listener.entries_removed(removed)

    def delete(self, image_id):
        """Remove an image from the cache and cancel its fill; True if anything was there."""
        image_id = _check_id(image_id)
        with self._lock:
            job = self._fills.get(image_id)
            if job is not None:
                job.cancel('removed from the cache')
            present = self.driver.get(image_id) is not None
            self._remove_committed(image_id)
        self._notify_removed()
        return present or job is not None

    def clear(self, cancel_fills=True, keep=()):
        """Remove every committed entry not in ``keep`` and, unless told not to,
        cancel every fill of an image not in ``keep``; the count of entries removed.

        ``cancel_fills=False`` is clearing the cache but not the queue: the
        running fills belong to queued work, which stays.
        """
        keep = set(keep)
        with self._lock:
            jobs = [job for image_id, job in self._fills.items()
                    if cancel_fills and image_id not in keep]
            entries = [e for e in self.driver.list() if e.image_id not in keep]
            for entry in entries:
                self._remove_committed(entry.image_id)
        for job in jobs:
            job.cancel('the cache was cleared')
        self._notify_removed()
        return len(entries)

    def prune(self):
        """Evict down to the low watermark now; ``(files, bytes)`` evicted."""
        pinned = self.listener.pinned_ids()
        with self._lock, self._reserved.locked():
            committed = self.driver.total_size()
            target = max(self.low_watermark - self._reserved.total(), 0)
            if committed <= target:
                return 0, 0
            victims = evictor.choose_victims(self.driver.list(), committed - target,
                                             self._protected(pinned))
            for entry in victims:
                self._evict(entry)
        self._notify_removed()
        return len(victims), sum(v.size for v in victims)

    def clean(self):
        """Remove abandoned incomplete files and quarantined ones; ``(files, bytes)``."""
        stalled = evictor.clean_directory(
            self.incomplete_dir, lambda p: evictor.is_abandoned(p, self.stall_time))
        invalid = evictor.clean_directory(self.invalid_dir, lambda p: True)
        return stalled[0] + invalid[0], stalled[1] + invalid[1]

    def close(self):
        with self._lock:
            jobs = list(self._fills.values())
        for job in jobs:
            job.cancel('the node is stopping')
        self.driver.close()
        with self._lock:
            self._reserved.close()
            doomed, self._doomed = self._doomed, []
        for fd in doomed:
            os.close(fd)
