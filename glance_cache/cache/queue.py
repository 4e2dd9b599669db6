"""The durable caching queue of one node: a job record per image, as files.

``<cache_dir>/queue/<image id>`` holds the JSON record of each image waiting
for or being cached (state ``queued`` or ``caching``); once a job ends its
record moves to ``queue/done/<image id>`` (state ``cached``) or to
``queue/failed/<image id>`` (state ``failed``). So what is pending or failed
is read without reading a record per image the node holds.
A record holds the state, attempts, times, bytes done and last error.
Records are replaced atomically (write, then rename), and every
read-modify-write holds ``queue/.lock`` (flock), so any process of the node
may change them while one process drains. Queuing takes no lock: a new
record is hard-linked into place, which fails if the image is pending
already. Pending records survive restarts: the next drainer resumes them.

Every write into ``done/`` or ``failed/`` (under the lock) is noted, by the
image's id, in the change log ``queue/.finished``. A process keeps the
finished records it read, and listing every job reads again only those the
log named since its last listing (and new names); now and then the log
starts again, and the next listing in each process reads every file, parsing
only those whose bytes changed.

The drainer keeps the pending records in memory, in a heap ordered by
``queued_at`` (FIFO). Records its own process writes go in as they are
written; those written by the node's other processes are found by a listing
of ``queue/`` (names only), made when such a process said it queued
something, and at least every ``LIST_INTERVAL`` seconds in case the word
was lost. So claiming the next job costs one record read, however long the
queue.

Other processes wake the drainer through a datagram socket
(``queue/wakeup.sock``); a wake-up that is lost costs at most the drainer's
poll interval.
"""

import contextlib
import heapq
import json
import operator
import os
import random
import socket
import threading
import time

from glance_cache import ids
from glance_cache.cache import nodelock

QUEUED, CACHING, CACHED, FAILED = 'queued', 'caching', 'cached', 'failed'
PENDING = (QUEUED, CACHING)
DONE = (CACHED, FAILED)
STATES = (QUEUED, CACHING, CACHED, FAILED)

WAKEUP_SOCKET = 'wakeup.sock'
# Records being written; such a file older than TMP_MAX_AGE was left by a crash.
TMP_SUFFIX = '.tmp'
TMP_MAX_AGE = 60.0
# Bytes read at a time from a record (most records are far smaller).
RECORD_READ = 4096
# Longest time between two listings of queue/ by the drainer.
LIST_INTERVAL = 1.0
# The names of the records written into done/ and failed/ (see _ChangeLog).
FINISHED_LOG = '.finished'
# The change log's size at which it starts again (some 28,000 entries).
MAX_CHANGE_LOG = 1024 * 1024
_LOG_HEADER = 8
_LOG_ENTRY = 37   # an image id (36 characters) and a newline
# How many different sets of keys the finished records kept share their tuple
# (records of one version have one set).
MAX_RECORD_SHAPES = 16
# Records in the order they were queued (the id for those queued at once).
_QUEUE_ORDER = operator.itemgetter('queued_at', 'image_id')
# Not a state of a record: what a job becomes when it is deleted or cleared.
REMOVED = 'removed'


def log_transition(log, level, image_id, old, new, **details):
    """Log one line for a job's change of state, with ``key=value`` details.

    Every change of every job gets exactly one such line, so that
    ``grep 'Caching job of image <id>'`` tells the job's whole story::

        Caching job of image 6c1f...: caching -> cached attempt=1/5 bytes=1073741824
        duration=4.08
    """
    fields = []
    for key, value in details.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = '%.3f' % value
        elif isinstance(value, str) and (not value or ' ' in value or '"' in value):
            value = json.dumps(value)
        fields.append('%s=%s' % (key, value))
    log.log(level, 'Caching job of image %s: %s -> %s%s', image_id, old or 'new', new,
            ''.join(' ' + f for f in fields))


def _unlink(path):
    """Remove ``path``; whether it was there."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _read(path):
    """The bytes in ``path``; None if there is no such file."""
    # os-level calls: listing ten thousand jobs reads ten thousand records,
    # and a file object per record costs as much as the reading itself.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, RECORD_READ):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b''.join(chunks)


def _parse(raw):
    """The record in the bytes ``raw``; None if they are not one."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _record_named(raw, name):
    """The record in ``raw``, read from the file ``name``; None if it is not that image's.

    A record is under its image's id; any other file is not one.
    """
    record = _parse(raw)
    return record if record is not None and record.get('image_id') == name else None


class _ChangeLog:
    """The names of the records written into done/ and failed/, in order, in
    a file that every process of the node shares.

    The file starts with its generation (8 bytes); each write appends the
    image id and a newline. Appended under the queue's lock, so entries never
    interleave. Once the file reaches ``MAX_CHANGE_LOG`` bytes the next write
    starts it again, one generation on. A reader keeps a mark, (generation,
    offset), and asks what was written since: the names, or None when it
    cannot tell (its first look, or the file started again since), and then
    it reads everything. Read with positioned reads and no lock: only whole
    entries before the size it saw are taken.

    A file of an earlier version (an 8-byte count of the writes) reads as a
    generation with no entries.
    """

    def __init__(self, path):
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _generation(self, fd):
        return int.from_bytes(os.pread(fd, _LOG_HEADER, 0).ljust(_LOG_HEADER, b'\0'), 'little')

    def since(self, mark):
        """``(mark now, {names written since mark} or None)``."""
        fd = self._fd
        if fd is None:
            return None, None
        try:
            generation = self._generation(fd)
            end = max(os.fstat(fd).st_size, _LOG_HEADER)
            if mark is None or mark[0] != generation or mark[1] > end:
                return (generation, end), None
            data = os.pread(fd, end - mark[1], mark[1]) if end > mark[1] else b''
            if self._generation(fd) != generation:
                # Started again while read: what was read may be of either
                # generation. The old mark makes the next look read all too.
                return (generation, end), None
        except OSError:
            return None, None   # closed meanwhile
        whole = len(data) - len(data) % _LOG_ENTRY
        names = {data[i:i + _LOG_ENTRY - 1].decode('ascii', 'replace')
                 for i in range(0, whole, _LOG_ENTRY)}
        return (generation, mark[1] + whole), names

    def append(self, image_id):
        """Note a write of ``image_id``'s record (callers hold the queue's lock)."""
        fd = self._fd
        end = max(os.fstat(fd).st_size, _LOG_HEADER)
        if end >= MAX_CHANGE_LOG:
            # Generation first: a reader that saw the old one and reads past
            # the start again sees it changed and reads everything.
            os.pwrite(fd, (self._generation(fd) + 1).to_bytes(_LOG_HEADER, 'little'), 0)
            os.ftruncate(fd, _LOG_HEADER)
            end = _LOG_HEADER
        os.pwrite(fd, ('%s\n' % image_id).encode('ascii'), end)

    def close(self):
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def new_record(image_id, size, node):
    return {'image_id': image_id, 'state': QUEUED, 'size': size, 'bytes_done': 0,
            'queued_at': time.time(), 'started_at': None, 'finished_at': None,
            'attempts': 0, 'last_error': None, 'next_attempt_at': 0.0, 'node': node}


class JobQueue:
    """Job records under ``<cache_dir>/queue``; see the module docstring."""

    def __init__(self, cache_dir, node):
        self.dir = os.path.join(cache_dir, 'queue')
        self.done_dir = os.path.join(self.dir, 'done')
        self.failed_dir = os.path.join(self.dir, 'failed')
        for directory in (self.done_dir, self.failed_dir):
            os.makedirs(directory, exist_ok=True)
        # Where the record of each state lives.
        self._dirs = {QUEUED: self.dir, CACHING: self.dir, CACHED: self.done_dir,
                      FAILED: self.failed_dir}
        self.node = node
        self._lock_path = os.path.join(self.dir, '.lock')
        self._thread_lock = threading.RLock()
        self._depth = 0   # how many times the thread holding _thread_lock took locked()
        # Descriptors of records replaced under the lock, closed when it is
        # released (see _freed_later).
        self._doomed = []
        self.wakeup_path = os.path.join(self.dir, WAKEUP_SOCKET)
        # Set by the worker when this process drains: wake it without a socket.
        self.local_wakeup = None
        # The drainer's view of the queued records: id -> (queued_at,
        # next_attempt_at), and a heap of (queued_at, id) over it whose
        # entries that no longer match are skipped when they come up.
        # Kept only once this process has claimed: it is then the drainer.
        self._order = {}
        self._heap = []
        # Guards _order and _heap only: queuing updates them without waiting
        # for the queue's lock, which the drainer holds across commits.
        self._order_lock = threading.RLock()
        self._listed_at = float('-inf')
        self._claiming = False
        self._node_lock = nodelock.NodeLock(self._lock_path)
        self._finished_log = _ChangeLog(os.path.join(self.dir, FINISHED_LOG))
        # done/ or failed/ -> (the change log's mark when it was last listed, {name: (the
        # hash of the file's bytes, its record's keys and values, or None and
        # None if it holds none)}), replaced whole. Kept as tuples, with the
        # tuples of keys shared: a node may hold tens of thousands of records.
        self._finished = {}
        self._record_keys = {}

    @contextlib.contextmanager
    def locked(self):
        """Hold the queue's lock across the node's threads and processes.

        A thread that holds it already may take it again: only the outermost
        hold takes and releases the flock (an inner release would free it).
        The records replaced with ``free_later`` are freed once it is
        released.
        """
        doomed = []
        try:
            with self._thread_lock:
                if self._depth:
                    self._depth += 1
                    try:
                        yield
                    finally:
                        self._depth -= 1
                    return
                with self._node_lock.held():
                    self._depth = 1
                    try:
                        yield
                    finally:
                        self._depth = 0
                        doomed, self._doomed = self._doomed, []
        finally:
            for fd in doomed:
                os.close(fd)

    @contextlib.contextmanager
    def _freed_later(self, path):
        """Around a replace of the record at ``path``: its file is freed when
        the queue's lock is released, not by the rename.

        The file system frees a file's blocks when its last link and
        descriptor go. A rename does that while it holds the directory, and
        on a busy disk it can take a quarter of a second (ext4 without a
        journal, mounted with ``discard``, waits for the discard of each
        block): every listing of queue/, and so every GET /v2/cache, waited
        behind a fill's progress being saved. Kept open across the rename,
        the old file is freed when the lock is released (at once if it is
        not held), outside the directory and the queue's lock. (An unlink
        frees the file after it lets go of the directory.)
        """
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            fd = None   # no such record (or not readable: freed by the call)
        try:
            yield
        finally:
            if fd is not None:
                if self._depth:
                    self._doomed.append(fd)
                else:
                    os.close(fd)

    def close(self):
        with self._thread_lock:
            self._node_lock.close()
            self._finished_log.close()

    def _path(self, image_id, state):
        if not ids.is_canonical(image_id):
            raise ValueError('not an image id: %r' % (image_id,))
        return os.path.join(self._dirs[state], image_id)

    def _paths(self, image_id):
        """Every place a record of ``image_id`` can be: pending, cached, failed."""
        return [self._path(image_id, state) for state in (QUEUED, CACHED, FAILED)]

    @staticmethod
    def _load(path):
        """The record in ``path``; None if there is none or it is not a record."""
        raw = _read(path)
        return None if raw is None else _parse(raw)

    def get(self, image_id):
        """The record of ``image_id``, or None."""
        for path in self._paths(image_id):
            record = self._load(path)
            if record is not None:
                return record
        return None

    def _write_tmp(self, path, record):
        """``record`` in a new file beside ``path``, to be renamed or linked there."""
        # dumps, not dump: only the one-shot encoder is the C one. And os-level
        # calls: a file object costs four more system calls than these three,
        # each letting another thread take the GIL, which in a burst of PUTs
        # the request thread then waits to get back. For the same reason the
        # name is not made from uuid4, which asks the kernel for its bytes:
        # random's generator is reseeded in each forked process, and a name
        # taken already (by chance, or by a crashed writer's leftover) is
        # refused by O_EXCL and another drawn.
        data = json.dumps(record).encode('ascii')
        while True:
            tmp = '%s.%08x%s' % (path, random.getrandbits(32), TMP_SUFFIX)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                break
            except FileExistsError:
                continue
        try:
            rest = memoryview(data)
            while rest:
                rest = rest[os.write(fd, rest):]
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        os.close(fd)
        return tmp

    def put(self, record, drop_other=True, free_later=False):
        """Write ``record`` atomically where its state belongs (callers hold ``locked()``).

        The image's records in the other directories are removed, unless
        ``drop_other`` is false. With ``free_later``, the record it replaces
        is freed once the lock is released (see _freed_later): that costs
        two system calls, each of which lets another thread take the GIL, so
        only writes that may come while a fill keeps the disk busy ask for it.
        """
        path = self._path(record['image_id'], record['state'])
        tmp = self._write_tmp(path, record)
        if free_later:
            with self._freed_later(path):
                os.replace(tmp, path)
        else:
            os.replace(tmp, path)
        if record['state'] in DONE:
            # After the write: see _finished_records.
            self._finished_log.append(record['image_id'])
        if drop_other:
            for other in self._paths(record['image_id']):
                if other != path:
                    # An unlink frees the file after it lets go of the directory.
                    _unlink(other)
        self._track(record)

    def _track(self, record):
        """Note a record just written or found, in the drainer's process."""
        if not self._claiming:
            return  # not the drainer (yet): its first claim lists queue/
        image_id = record['image_id']
        with self._order_lock:
            if record['state'] == QUEUED:
                self._order[image_id] = (record['queued_at'], record['next_attempt_at'])
                heapq.heappush(self._heap, (record['queued_at'], image_id))
            else:
                self._order.pop(image_id, None)

    def update(self, image_id, **changes):
        """Change fields of a record if it exists; return it, or None.

        A pending record replaced (a fill's progress, saved while the fill
        keeps the disk busy) is freed once the lock is released.
        """
        with self.locked():
            record = self.get(image_id)
            if record is None:
                return None
            record.update(changes)
            self.put(record, free_later=record['state'] in PENDING)
            return record

    def remove(self, image_id):
        """Drop the record of ``image_id``; True if there was one."""
        removed = False
        with self.locked():
            for path in self._paths(image_id):
                removed = _unlink(path) or removed
            with self._order_lock:
                self._order.pop(image_id, None)
        return removed

    def drop_cached(self, image_ids, is_cached):
        """Drop the ``cached`` records of images whose entry has left the cache.

        Such a record says nothing any more (the jobs listing leaves it out),
        and left alone, the records of evicted images would pile up for as
        long as the node runs. ``is_cached(image_id)`` is asked under the
        queue's lock, which a fill holds over its commit: the record of an
        image cached again meanwhile stays.
        """
        dropped = []
        with self.locked():
            for image_id in image_ids:
                path = self._path(image_id, CACHED)
                record = self._load(path)
                if (record is not None and record['state'] == CACHED
                        and not is_cached(image_id) and _unlink(path)):
                    dropped.append(image_id)
        return dropped

    def cached_record_ids(self):
        """Ids of the cached records (names only, nothing read)."""
        return [name for name in os.listdir(self.done_dir) if ids.is_canonical(name)]

    def pending_ids(self):
        """Ids of the queued and caching records (names only, nothing read)."""
        return [name for name in os.listdir(self.dir) if ids.is_canonical(name)]

    def _records(self, directory):
        """Every record in ``directory``: pending ones read afresh, finished ones as kept."""
        if directory != self.dir:
            return self._finished_records(directory)
        records = []
        prefix = os.path.join(directory, '')
        for name in os.listdir(directory):
            if ids.is_canonical(name):
                raw = _read(prefix + name)
                record = None if raw is None else _record_named(raw, name)
                if record is not None:
                    records.append(record)
        return records

    def _finished_records(self, directory):
        """The records in done/ or failed/, as _records, reading only what changed.

        Each write into these directories is noted in the change log after it
        is made. The files listed last time still hold what was read from
        them, unless the log names them since: only those, and new names, are
        read. When the log cannot tell (the first listing, or the log started
        again), every file is read, and parsed only if its bytes hash
        differently (64 bits: two different records of one image that hash
        alike are not to be expected). Removals are not noted: the names are
        listed every time.
        """
        mark, known = self._finished.get(directory, (None, {}))
        mark, written = self._finished_log.since(mark)   # before the listing, as every write
        seen, records = {}, []
        prefix = os.path.join(directory, '')
        for name in os.listdir(directory):
            entry = known.get(name)   # names kept were checked when first read
            if entry is None and not ids.is_canonical(name):
                continue
            if entry is None or written is None or name in written:
                raw = _read(prefix + name)
                if raw is None:
                    continue   # removed since listed
                digest = hash(raw)
                if entry is None or entry[0] != digest:
                    entry = self._kept(digest, _record_named(raw, name))
            seen[name] = entry
            if entry[1] is not None:
                # A new dict each time: callers change the records they get.
                records.append(dict(zip(entry[1], entry[2], strict=True)))
        self._finished[directory] = (mark, seen)
        return records

    def _kept(self, digest, record):
        """What _finished_records keeps of a file: (digest, keys, values)."""
        if record is None:
            return digest, None, None
        keys = tuple(record)
        if len(self._record_keys) < MAX_RECORD_SHAPES:
            keys = self._record_keys.setdefault(keys, keys)
        return digest, keys, tuple(record.values())

    def pending(self):
        """Queued and caching records, oldest queued first."""
        return sorted(self._records(self.dir), key=_QUEUE_ORDER)

    def failed(self):
        """Failed records, oldest queued first."""
        return sorted(self._records(self.failed_dir), key=_QUEUE_ORDER)

    def all(self):
        """Every record, oldest queued first; one per image.

        An image with a pending record shows only that one: a finished record
        of an earlier job can linger beside it for a moment (see enqueue). So
        can a cached and a failed record, of which the later finished shows.
        """
        records = self._records(self.dir)
        pending = {r['image_id'] for r in records}
        finished = {}
        for record in self._records(self.done_dir) + self._records(self.failed_dir):
            image_id = record['image_id']
            other = finished.get(image_id)
            if image_id not in pending and (
                    other is None or (record['finished_at'] or 0) > (other['finished_at'] or 0)):
                finished[image_id] = record
        records += finished.values()
        records.sort(key=_QUEUE_ORDER)
        return records

    def enqueue(self, image_id, size, announce=None):
        """Queue ``image_id`` unless it is queued or caching already.

        Returns ``(record, added)``. A failed record, or a cached one whose
        entry has left the cache (the caller checks the cache first), is
        queued afresh. ``announce()``, if given, is called when the record
        was added, before the drainer is woken: what it logs comes
        before the drainer's own lines about the job.

        Takes no lock: the new record is written aside and hard-linked into
        place, and the link fails if a pending record is there already. So
        a burst of PUTs does not queue up behind the drainer, which holds
        the lock across each commit.
        """
        path = self._path(image_id, QUEUED)
        record = self._load(path)
        if record is not None:
            return record, False
        record = new_record(image_id, size, self.node)
        tmp = self._write_tmp(path, record)
        try:
            while True:
                try:
                    os.link(tmp, path)
                    break
                except FileExistsError:
                    existing = self._load(path)
                    if existing is not None:
                        return existing, False
                    # Removed in between: try again to be the one that queues it.
        finally:
            os.unlink(tmp)
        _unlink(self._path(image_id, CACHED))
        _unlink(self._path(image_id, FAILED))
        self._track(record)
        if announce is not None:
            announce()
        self.wake()
        return record, True

    def record_failure(self, image_id, size, reason):
        """Write a failed record for an image not attempted (such as a pin over budget).

        An image already queued or caching keeps its record.
        """
        with self.locked():
            if self._load(self._path(image_id, QUEUED)) is not None:
                return
            record = new_record(image_id, size, self.node)
            record.update(state=FAILED, last_error=reason, finished_at=time.time())
            # There was no pending record a moment ago; one enqueued since
            # (enqueue takes no lock) must stay.
            self.put(record, drop_other=False)

    def mark_stale(self):
        """Another process may have queued something: list ``queue/`` before the next claim."""
        self._listed_at = float('-inf')

    def _refresh_order(self):
        """Bring the in-memory order up to date with ``queue/`` (lock held)."""
        now = time.monotonic()
        if now - self._listed_at < LIST_INTERVAL:
            return
        # Set before listing: a mark_stale() from now on forces the next listing.
        self._listed_at = now
        # Held across the listing: a record queued meanwhile in this process
        # is either listed or tracked after, never dropped as gone.
        with self._order_lock:
            names = set(self.pending_ids())
            for gone in set(self._order) - names:
                del self._order[gone]
            for name in names - set(self._order):
                record = self._load(os.path.join(self.dir, name))
                if record is not None and record['state'] == QUEUED:
                    self._track(record)

    def claim(self, now=None):
        """The oldest queued record that is due, marked caching; or None.

        Also returns the earliest time a not-yet-due record becomes due.
        """
        now = now or time.time()
        # The in-memory order's lock is held only while the order is read or
        # changed, not over the files: a PUT in this process waits for it to
        # note the record it queued, and must not wait for a claim's writes.
        # Claims are one at a time (the queue's lock), and no other thread
        # removes an entry from the heap.
        with self.locked():
            with self._order_lock:
                self._claiming = True
                self._refresh_order()
            not_due, claimed = [], None
            try:
                while claimed is None:
                    with self._order_lock:
                        due = self._pop_due(now, not_due)
                    if due is None:
                        break
                    image_id = due[1]
                    record = self._load(os.path.join(self.dir, image_id))
                    if record is None or record['state'] != QUEUED:
                        with self._order_lock:
                            self._order.pop(image_id, None)
                        continue
                    record.update(state=CACHING, started_at=now, finished_at=None,
                                  bytes_done=0, attempts=record['attempts'] + 1)
                    try:
                        self.put(record)
                    except BaseException:
                        # Not claimed (its record still says queued): it stays in line.
                        with self._order_lock:
                            heapq.heappush(self._heap, due)
                        raise
                    claimed = record
            finally:
                with self._order_lock:
                    for queued_at, image_id, _ in not_due:
                        heapq.heappush(self._heap, (queued_at, image_id))
            return claimed, min((at for _, _, at in not_due), default=None)

    def _pop_due(self, now, not_due):
        """The oldest due entry, ``(queued_at, image_id)``, taken off the heap; None if none is.

        The entries not yet due met on the way are taken off too and added to
        ``not_due`` as ``(queued_at, image_id, due)``. Call with the order's
        lock held.
        """
        while self._heap:
            queued_at, image_id = heapq.heappop(self._heap)
            entry = self._order.get(image_id)
            if entry is None or entry[0] != queued_at:
                continue  # gone, or queued again since: a newer entry stands for it
            if entry[1] > now:
                not_due.append((queued_at, image_id, entry[1]))
                continue
            return queued_at, image_id
        return None

    def requeue_caching(self):
        """Return every caching record to queued (a new drainer resumes them).

        Also removes records half-written by a process that died, and moves
        failed records kept under done/ (before failed/ existed) to failed/.
        """
        with self.locked():
            self._remove_stale_tmp()
            for record in self._records(self.done_dir):
                if record['state'] == FAILED:
                    os.replace(os.path.join(self.done_dir, record['image_id']),
                               self._path(record['image_id'], FAILED))
                    self._finished_log.append(record['image_id'])
            for record in self.pending():
                if record['state'] == CACHING:
                    record.update(state=QUEUED, bytes_done=0, started_at=None,
                                  attempts=max(record['attempts'] - 1, 0))
                    self.put(record)

    def _remove_stale_tmp(self):
        now = time.time()
        for directory in (self.dir, self.done_dir, self.failed_dir):
            for name in os.listdir(directory):
                if not name.endswith(TMP_SUFFIX):
                    continue
                path = os.path.join(directory, name)
                try:
                    if now - os.stat(path).st_mtime > TMP_MAX_AGE:
                        _unlink(path)
                except FileNotFoundError:
                    pass

    def clear(self, states, keep=()):
        """Drop the records in ``states``, except those of ``keep`` ids; their ids."""
        removed = []
        with self.locked():
            for directory in (self.dir, self.done_dir, self.failed_dir):
                for record in self._records(directory):
                    image_id = record['image_id']
                    if record['state'] not in states or image_id in keep:
                        continue
                    # Where it was read: a failed record may still be under done/.
                    if not _unlink(os.path.join(directory, image_id)):
                        continue
                    with self._order_lock:
                        self._order.pop(image_id, None)
                    removed.append(image_id)
        return removed

    def wake(self):
        """Tell the drainer, in whatever process it runs, that there is work."""
        if self.local_wakeup is not None:
            self.local_wakeup()
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.sendto(b'w', self.wakeup_path)
        except OSError:
            pass  # no drainer listening, or its buffer is full: it polls anyway
        finally:
            sock.close()
