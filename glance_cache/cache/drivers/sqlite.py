"""Cache metadata in a SQLite database inside the cache directory."""

import os
import sqlite3
import threading

from glance_cache.cache.drivers import base

DB_NAME = 'cache.db'

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cached_images (
    image_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    last_accessed REAL NOT NULL,
    last_modified REAL NOT NULL
)
"""


class SqliteDriver(base.CacheDriver):
    """Entries as rows of ``cache.db``; safe across the processes of one node."""

    def __init__(self, cache_dir):
        super().__init__(cache_dir)
        self.path = os.path.join(cache_dir, DB_NAME)
        self._lock = threading.Lock()
        # Writes through this connection: SQLite's data_version counts only
        # the other connections' commits.
        self._writes = 0
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute('PRAGMA journal_mode=WAL')
        self._conn.execute('PRAGMA synchronous=NORMAL')
        self._conn.execute(_SCHEMA)

    def _execute(self, sql, params=()):
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _write(self, sql, params=()):
        with self._lock:
            self._writes += 1
            self._conn.execute(sql, params)

    def version(self):
        with self._lock:
            return (self._conn.execute('PRAGMA data_version').fetchone()[0], self._writes)

    def before_commit(self, path, image_id, size):
        pass

    def after_commit(self, image_id, size):
        now = self.now()
        self._write('INSERT OR REPLACE INTO cached_images '
                    '(image_id, size, hits, last_accessed, last_modified) '
                    'VALUES (?, ?, 0, ?, ?)', (image_id, size, now, now))

    def get(self, image_id):
        rows = self._execute('SELECT image_id, size, hits, last_accessed, last_modified '
                             'FROM cached_images WHERE image_id = ?', (image_id,))
        return base.CacheEntry._make(rows[0]) if rows else None

    def list(self):
        make = base.CacheEntry._make
        return [make(row) for row in self._execute(
            'SELECT image_id, size, hits, last_accessed, last_modified FROM cached_images')]

    def hit(self, image_id):
        self._write('UPDATE cached_images SET hits = hits + 1, last_accessed = ? '
                    'WHERE image_id = ?', (self.now(), image_id))

    def forget(self, image_id):
        self._write('DELETE FROM cached_images WHERE image_id = ?', (image_id,))

    def total_size(self):
        return self._execute('SELECT COALESCE(SUM(size), 0) FROM cached_images')[0][0]

    def reconcile(self, present):
        known = {entry.image_id: entry for entry in self.list()}
        for image_id in set(known) - set(present):
            self.forget(image_id)
        for image_id in set(present) - set(known):
            self.after_commit(image_id, present[image_id])

    def close(self):
        with self._lock:
            self._conn.close()
