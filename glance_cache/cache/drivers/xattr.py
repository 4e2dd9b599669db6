"""Cache metadata in extended attributes of the cached files themselves.

Nothing but the files: a committed file carries its hits and times, and
listing the cache is listing the directory. Needs a file system with user
xattrs (ext4, XFS, tmpfs). Two processes counting a hit on the same file at
the same instant may count it once; access order stays right.
"""

import os
import threading

from glance_cache import ids
from glance_cache.cache.drivers import base

_PREFIX = 'user.glance_cache.'
HITS = _PREFIX + 'hits'
LAST_ACCESSED = _PREFIX + 'last_accessed'
LAST_MODIFIED = _PREFIX + 'last_modified'


class XattrDriver(base.CacheDriver):
    """Entries as extended attributes of the files in the cache directory."""

    def __init__(self, cache_dir):
        super().__init__(cache_dir)
        self._lock = threading.Lock()
        probe = os.path.join(cache_dir, '.xattr-probe')
        with open(probe, 'wb'):
            pass
        try:
            os.setxattr(probe, HITS, b'0')
        except OSError as exc:
            raise RuntimeError('The cache directory %s does not support extended '
                               'attributes (%s); use [cache] driver = sqlite'
                               % (cache_dir, exc)) from None
        finally:
            os.unlink(probe)

    def _path(self, image_id):
        return os.path.join(self.cache_dir, image_id)

    @staticmethod
    def _write(path, hits, last_accessed, last_modified):
        os.setxattr(path, HITS, str(hits).encode())
        os.setxattr(path, LAST_ACCESSED, repr(last_accessed).encode())
        os.setxattr(path, LAST_MODIFIED, repr(last_modified).encode())

    def before_commit(self, path, image_id, size):
        now = self.now()
        self._write(path, 0, now, now)

    def after_commit(self, image_id, size):
        pass

    def _read(self, image_id):
        path = self._path(image_id)
        try:
            size = os.stat(path).st_size
            hits = int(os.getxattr(path, HITS))
            last_accessed = float(os.getxattr(path, LAST_ACCESSED))
            last_modified = float(os.getxattr(path, LAST_MODIFIED))
        except (OSError, ValueError):
            return None
        return base.CacheEntry(image_id, size, hits, last_accessed, last_modified)

    def get(self, image_id):
        return self._read(image_id)

    def list(self):
        entries = []
        with os.scandir(self.cache_dir) as it:
            for item in it:
                if item.is_file(follow_symlinks=False) and ids.is_canonical(item.name):
                    entry = self._read(item.name)
                    if entry is not None:
                        entries.append(entry)
        return entries

    def hit(self, image_id):
        with self._lock:
            entry = self._read(image_id)
            if entry is not None:
                try:
                    os.setxattr(self._path(image_id), HITS, str(entry.hits + 1).encode())
                    os.setxattr(self._path(image_id), LAST_ACCESSED,
                                repr(self.now()).encode())
                except OSError:
                    pass  # evicted meanwhile

    def forget(self, image_id):
        pass  # the metadata went with the file

    def reconcile(self, present):
        # A committed file whose attributes are missing (copied in by hand,
        # say) gets fresh ones, so that it is listed and can be evicted.
        for image_id in present:
            if self._read(image_id) is None:
                try:
                    now = self.now()
                    self._write(self._path(image_id), 0, now, now)
                except OSError:
                    pass
