"""The contract every cache metadata driver fulfils.

The cache (``glance_cache.cache.ImageCache``) owns the files: it writes a fill
to ``incomplete/<id>``, verifies it, and renames it to ``<id>`` in the cache
directory. Around that rename it calls the driver:

1. ``before_commit(path, image_id, size)`` with the verified file still under
   ``incomplete/``: a driver that keeps metadata on the file itself writes it
   now, so the rename publishes data and metadata at once;
2. ``after_commit(image_id, size)`` once the file is in place: a driver with a
   separate store records the entry now.

A crash between the two leaves a committed file without a record;
``reconcile`` (called at start-up) repairs that and drops records whose file
is gone. Drivers never create or delete cached files themselves, except that
``forget`` is called after the cache has unlinked one.
"""

import abc
import time
import typing


class CacheEntry(typing.NamedTuple):
    """One committed image in the cache. Times are epoch seconds (floats).

    A named tuple rather than a dataclass: listing a large cache builds one
    per entry, and tuples are several times cheaper to make.
    """

    image_id: str
    size: int
    hits: int
    last_accessed: float
    last_modified: float


class CacheDriver(abc.ABC):
    """Metadata of the committed entries of one cache directory."""

    def __init__(self, cache_dir):
        self.cache_dir = cache_dir

    @staticmethod
    def now():
        return time.time()

    @abc.abstractmethod
    def before_commit(self, path, image_id, size):
        """Called with the verified file at ``path``, just before it is renamed in."""

    @abc.abstractmethod
    def after_commit(self, image_id, size):
        """Called once the file of ``image_id`` is in place."""

    @abc.abstractmethod
    def get(self, image_id):
        """The CacheEntry of ``image_id``, or None."""

    @abc.abstractmethod
    def list(self):
        """Every CacheEntry, in no particular order."""

    @abc.abstractmethod
    def hit(self, image_id):
        """Count a read of ``image_id`` and set its last access to now."""

    @abc.abstractmethod
    def forget(self, image_id):
        """Drop the metadata of ``image_id`` (its file is already gone)."""

    @abc.abstractmethod
    def reconcile(self, present):
        """Make the metadata match ``present``: {image_id: size} of committed files."""

    def total_size(self):
        """Bytes held by committed entries."""
        return sum(entry.size for entry in self.list())

    def version(self):
        """A value that changes whenever any entry changes, in any process; or None.

        None (the default) means the driver cannot tell, and callers must not
        reuse anything derived from an earlier ``list()``.
        """
        return None

    def changes(self, since):
        """What changed since an earlier call: ``(mark, entries, complete)``.

        ``since`` is the ``mark`` an earlier call returned, or None. With
        ``complete`` true, ``entries`` is every entry, as ``list()`` gives;
        with it false, ``entries`` holds only the entries added or changed
        since then, and none was removed. The default cannot tell and always
        answers with every entry.
        """
        return None, self.list(), True

    def close(self):
        """Release what the driver holds open (nothing, unless a driver says so)."""
        return None
