"""Cache metadata in a SQLite database inside the cache directory."""

import contextlib
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
    last_modified REAL NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0
)
"""
# One row counting the changes: ``seq`` goes up by one with every write, and
# the row it wrote takes that number as its own ``seq``; ``removals`` goes up
# with every entry dropped. So the rows with a greater ``seq`` than a reader
# saw are all that changed since, unless ``removals`` moved too.
_CHANGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_changes (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    seq INTEGER NOT NULL,
    removals INTEGER NOT NULL
)
"""
_COLUMNS = 'image_id, size, hits, last_accessed, last_modified'
_NEXT_SEQ = '(SELECT seq FROM cache_changes)'


class SqliteDriver(base.CacheDriver):
    """Entries as rows of ``cache.db``; safe across the processes of one node."""

    def __init__(self, cache_dir):
        super().__init__(cache_dir)
        self.path = os.path.join(cache_dir, DB_NAME)
        self._lock = threading.Lock()
        # Writes through this connection: SQLite's data_version counts only
        # the other connections' commits.
        self._writes = 0
        self._conn = self._connect()
        self._conn.execute('PRAGMA journal_mode=WAL')
        self._conn.execute('PRAGMA synchronous=NORMAL')
        with self._transaction('BEGIN IMMEDIATE'):
            self._create_schema()
        # Reads go through connections of their own, one per reading thread
        # at a time, so that a request asking whether an image is cached
        # does not wait for the worker's write in progress: in WAL mode a
        # reader sees the last commit while a write goes on.
        self._idle_readers = []
        self._closed = False

    def _connect(self):
        return sqlite3.connect(self.path, timeout=30, isolation_level=None,
                               check_same_thread=False)

    @contextlib.contextmanager
    def _reader(self):
        """A read-only connection for the duration (its reads autocommit)."""
        try:
            conn = self._idle_readers.pop()
        except IndexError:
            conn = self._connect()
            conn.execute('PRAGMA query_only=ON')
        try:
            yield conn
        finally:
            if self._closed:
                conn.close()
            else:
                self._idle_readers.append(conn)

    def _create_schema(self):
        conn = self._conn
        conn.execute(_SCHEMA)
        # A cache.db from before change counting: its rows count as written
        # before every reader's first look (seq 0).
        if 'seq' not in {row[1] for row in conn.execute('PRAGMA table_info(cached_images)')}:
            conn.execute('ALTER TABLE cached_images ADD COLUMN seq INTEGER NOT NULL DEFAULT 0')
        conn.execute('CREATE INDEX IF NOT EXISTS cached_images_by_seq ON cached_images (seq)')
        conn.execute(_CHANGES_SCHEMA)
        conn.execute('INSERT OR IGNORE INTO cache_changes (id, seq, removals) VALUES (0, 0, 0)')

    @contextlib.contextmanager
    def _transaction(self, begin='BEGIN', conn=None):
        """One transaction on ``conn``, or on the shared connection (then hold
        ``self._lock`` around it)."""
        conn = conn or self._conn
        conn.execute(begin)
        try:
            yield conn
            conn.execute('COMMIT')
        except BaseException:
            if conn.in_transaction:
                conn.execute('ROLLBACK')
            raise

    def _execute(self, sql, params=()):
        with self._reader() as conn:
            return conn.execute(sql, params).fetchall()

    def _write(self, sql, params=(), removal=False):
        """Run one change, counted in cache_changes (see _CHANGES_SCHEMA)."""
        with self._lock, self._transaction('BEGIN IMMEDIATE') as conn:
            self._writes += 1
            conn.execute('UPDATE cache_changes SET seq = seq + 1, removals = removals + ?',
                         (int(removal),))
            conn.execute(sql, params)

    def version(self):
        with self._lock:
            return (self._conn.execute('PRAGMA data_version').fetchone()[0], self._writes)

    def before_commit(self, path, image_id, size):
        pass

    def after_commit(self, image_id, size):
        now = self.now()
        self._write('INSERT OR REPLACE INTO cached_images (%s, seq) VALUES (?, ?, 0, ?, ?, %s)'
                    % (_COLUMNS, _NEXT_SEQ), (image_id, size, now, now))

    def get(self, image_id):
        rows = self._execute('SELECT %s FROM cached_images WHERE image_id = ?' % _COLUMNS,
                             (image_id,))
        return base.CacheEntry._make(rows[0]) if rows else None

    def list(self):
        make = base.CacheEntry._make
        return [make(row) for row in self._execute('SELECT %s FROM cached_images' % _COLUMNS)]

    def changes(self, since):
        """Only the rows written since ``since``, unless an entry was removed since."""
        # One read transaction: the mark and the rows are of one moment.
        with self._reader() as reader, self._transaction(conn=reader) as conn:
            seq, removals = conn.execute('SELECT seq, removals FROM cache_changes').fetchone()
            complete = since is None or since[0] != removals or since[1] > seq
            if complete:
                rows = conn.execute('SELECT %s FROM cached_images' % _COLUMNS).fetchall()
            else:
                rows = conn.execute('SELECT %s FROM cached_images WHERE seq > ?' % _COLUMNS,
                                    (since[1],)).fetchall()
        make = base.CacheEntry._make
        return (removals, seq), [make(row) for row in rows], complete

    def hit(self, image_id):
        self._write('UPDATE cached_images SET hits = hits + 1, last_accessed = ?, seq = %s '
                    'WHERE image_id = ?' % _NEXT_SEQ, (self.now(), image_id))

    def forget(self, image_id):
        self._write('DELETE FROM cached_images WHERE image_id = ?', (image_id,), removal=True)

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
            self._closed = True
            self._conn.close()
        while self._idle_readers:
            self._idle_readers.pop().close()
