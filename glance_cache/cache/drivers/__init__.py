"""Cache metadata drivers: where hits and access times of cached images live.

``load(name, cache_dir)`` returns the driver named by ``[cache] driver``.
"""

from glance_cache.cache.drivers import base


def load(name, cache_dir):
    """The driver called ``name`` for the cache in ``cache_dir``."""
    if name == 'sqlite':
        from glance_cache.cache.drivers import sqlite
        return sqlite.SqliteDriver(cache_dir)
    if name == 'xattr':
        from glance_cache.cache.drivers import xattr
        return xattr.XattrDriver(cache_dir)
    raise ValueError('Unknown cache driver %r' % name)


CacheEntry = base.CacheEntry
