"""CacheWorker: the one caching worker of a node.

A lock file in the cache directory (``worker.lock``) elects the process that
drains the queue; the node's other processes only enqueue, and retry the
election every ``poll_interval`` so one of them takes over if the drainer
dies. The drainer first returns records left ``caching`` by its predecessor
to ``queued``, then ``worker_threads`` threads each claim the oldest due
record and fill it.

Only ``threading`` and ``queue`` primitives are used, so in a process that
eventlet has monkey-patched the same code runs as green threads.

A job never kills its thread: every outcome is written to the job's record.
Transient failures (store I/O, connection errors, a stall of
``fetch_stall_timeout``) are retried after an exponential backoff with jitter
until ``max_attempts``; permanent ones (image gone or not active, data that
fails verification, an image larger than the cache) fail at once.
"""

import contextlib
import fcntl
import functools
import logging
import os
import queue
import random
import socket
import threading
import time

from glance_cache import cache as cache_module
from glance_cache import errors
from glance_cache.cache import cpus, fill
from glance_cache.cache import queue as job_queue

LOG = logging.getLogger(__name__)

LOCK_FILE = 'worker.lock'
PROGRESS_INTERVAL = 0.5
# While new jobs queue up faster than they start (a burst of PUTs), the next
# start waits for a pause this long between them, for at most
# [cache] burst_max_hold.
BURST_GAP = 0.02


class BurstHold:
    """How long to hold the next job start while a burst of new jobs arrives.

    A process's threads share one interpreter lock. A fill started in the
    middle of a burst of PUTs takes its turns with the requests still
    arriving: a node took longer to answer 1,000 PUTs with fills started
    among them, and about as long to cache the images (doc/source/caching.rst
    has the figures). So while two or more new jobs wait to start, the next
    one waits until none has arrived for ``gap``, for at most ``max_hold`` at
    a time (0: never). A lone PUT, or PUTs each started before the next
    comes, start at once.
    """

    def __init__(self, max_hold, gap=BURST_GAP, clock=time.monotonic):
        self.gap = gap
        self.max_hold = max_hold
        self._clock = clock
        self._lock = threading.Lock()
        # New jobs not started yet, as far as arrivals and starts tell: a
        # wake-up lost between processes only makes a burst look smaller,
        # and an empty queue sets the count right again.
        self._waiting = 0
        self._last = float('-inf')

    def arrived(self):
        """A new job was queued (here or by another process of the node)."""
        with self._lock:
            self._last = self._clock()
            self._waiting += 1

    def started(self):
        """A drainer took a job."""
        with self._lock:
            self._waiting = max(self._waiting - 1, 0)

    def idle(self):
        """A drainer found no job due."""
        with self._lock:
            self._waiting = 0

    def delay(self, since):
        """Seconds to wait before the next start, held since ``since``; 0 to go now."""
        if self._waiting < 2 or not self.max_hold:
            return 0.0
        now = self._clock()
        delay = min(self._last + self.gap - now, since + self.max_hold - now)
        return delay if delay > 0 else 0.0


class _Permanent(Exception):
    """A failure that another attempt would not cure."""


class CacheWorker:
    """Drains the node's job queue into its cache; see the module docstring."""

    def __init__(self, conf, cache, jobs, db, store):
        self.cache = cache
        self.jobs = jobs
        self.db = db
        self.store = store
        cc = conf.cache
        self.threads = cc.worker_threads
        self.max_attempts = cc.max_attempts
        self.stall_timeout = cc.fetch_stall_timeout
        self.retry_delay = cc.retry_delay
        self.retry_max_delay = cc.retry_max_delay
        self.poll_interval = cc.poll_interval
        self.cpus = cpus.FillCpus(cc.fill_cpu_reserve)
        self.is_drainer = False
        self._wakeups = queue.Queue()
        self._stopping = threading.Event()
        self._lock_fd = None
        self._running = {}
        self._running_lock = threading.Lock()
        self._threads = []
        self._wake_sock = None
        self.burst = BurstHold(cc.burst_max_hold)
        # Called, without arguments, in the process that wins the election.
        self.on_elected = []

    # -- life cycle --------------------------------------------------------------

    def start(self):
        """Start electing; the elected process starts draining at once."""
        if not self._elect():
            thread = threading.Thread(target=self._stand_by, name='cache-worker-standby',
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def _elect(self):
        fd = os.open(os.path.join(self.cache.dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        self.is_drainer = True
        self.jobs.requeue_caching()
        # Records of entries evicted while no listener heard (a crash between
        # the eviction and the word of it, or a node from before this tidying).
        try:
            self.jobs.drop_cached(self.jobs.cached_record_ids(),
                                  lambda image_id: self.cache.get(image_id) is not None)
        except OSError as exc:
            LOG.warning('Could not drop the job records of images no longer cached: %s', exc)
        self.jobs.local_wakeup = self.wake
        self._listen_for_wakeups()
        for i in range(self.threads):
            thread = threading.Thread(target=self._drain, name='cache-worker-%d' % i,
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        LOG.info('Process %d is this node\'s caching worker (%d thread(s); background '
                 'fills run %s)', os.getpid(), self.threads, self.cpus.describe())
        for callback in self.on_elected:
            callback()
        return True

    def _stand_by(self):
        while not self._stopping.wait(self.poll_interval):
            if self._elect():
                return

    def _listen_for_wakeups(self):
        path = self.jobs.wakeup_path
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(path)
        except OSError as exc:
            LOG.warning('No wake-up socket at %s (%s): work queued by other processes '
                        'starts within poll_interval', path, exc)
            sock.close()
            return
        self._wake_sock = sock
        thread = threading.Thread(target=self._receive_wakeups, name='cache-worker-wakeups',
                                  daemon=True)
        thread.start()
        self._threads.append(thread)

    def _receive_wakeups(self):
        sock = self._wake_sock
        sock.settimeout(self.poll_interval)
        while not self._stopping.is_set():
            try:
                sock.recv(64)
            except TimeoutError:
                continue
            except OSError:
                return
            self.jobs.mark_stale()
            self.wake()

    def wake(self):
        """A new job was queued: let one draining thread look."""
        self.burst.arrived()
        self._wakeups.put(None)

    def _await_lull(self):
        """Return when the next job may start (see BurstHold)."""
        since = time.monotonic()
        while True:
            delay = self.burst.delay(since)
            if delay <= 0 or self._stopping.wait(delay):
                return

    def stop(self, timeout=1.0):
        """Stop draining; running fills are cancelled and stay queued for the next start."""
        self._stopping.set()
        with self._running_lock:
            running = list(self._running.values())
        for job in running:
            job.cancel('the node is stopping')
        for _ in self._threads:
            self._wakeups.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))
        if self._wake_sock is not None:
            self._wake_sock.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- draining ----------------------------------------------------------------

    def _drain(self):
        while not self._stopping.is_set():
            self._await_lull()
            try:
                record, next_due = self.jobs.claim()
            except Exception:
                LOG.exception('Reading the caching queue failed; retrying')
                record, next_due = None, None
            if record is None:
                self.burst.idle()
                timeout = self.poll_interval
                if next_due is not None:
                    timeout = min(max(next_due - time.time(), 0.001), timeout)
                try:
                    self._wakeups.get(timeout=timeout)
                except queue.Empty:
                    pass
                continue
            self.burst.started()
            try:
                self._process(record)
            except Exception as exc:
                LOG.exception('Caching image %s failed unexpectedly', record['image_id'])
                self._failed(record, 'unexpected error: %s' % exc, transient=True)

    def live_progress(self):
        """{image_id: bytes written} of the fills running in this process."""
        with self._running_lock:
            return {image_id: job.bytes_done for image_id, job in self._running.items()}

    def running_job(self, image_id):
        with self._running_lock:
            return self._running.get(image_id)

    def _attempt(self, record):
        return '%d/%d' % (record['attempts'], self.max_attempts)

    def _process(self, record):
        image_id = record['image_id']
        job_queue.log_transition(LOG, logging.INFO, image_id, job_queue.QUEUED,
                                 job_queue.CACHING, attempt=self._attempt(record),
                                 size=record['size'])
        try:
            image = self._image(image_id)
            if self.cache.get(image_id) is not None:
                self._cached(record, image['size'])
                return
            job = self._begin(image)
        except _Permanent as exc:
            self._failed(record, str(exc), transient=False)
            return
        except errors.GlanceCacheError as exc:
            self._failed(record, exc.message, transient=True)
            return
        with self._running_lock:
            self._running[image_id] = job
        try:
            outcome = self._supervise(job, record)
        finally:
            with self._running_lock:
                self._running.pop(image_id, None)
        self._conclude(record, job, outcome)

    def _image(self, image_id):
        try:
            image = self.db.image_get(image_id)
        except errors.NotFound:
            raise _Permanent('the image no longer exists') from None
        if image['status'] != 'active' or not image['location']:
            raise _Permanent('the image is %s, not active' % image['status'])
        return image

    def _begin(self, image):
        try:
            job, started = self.cache.begin_fill(image, self.cpus.confinement(image['size']))
        except cache_module.CacheFull as exc:
            if (image['size'] or 0) > self.cache.max_size:
                raise _Permanent(exc.message) from None
            raise
        if started:
            location, store = image['location'], self.store
            job.commit_guard = functools.partial(self._still_wanted, image['id'])
            threading.Thread(target=job.run,
                             args=(lambda: store.get(location)[0], store.local_descriptor),
                             name='fill-%s' % image['id'], daemon=True).start()
        return job

    @contextlib.contextmanager
    def _still_wanted(self, image_id):
        """Hold the queue's lock over a fill's commit; yield whether its record remains.

        DELETE /v2/cache/{id} (and deleting or clearing) removes the record
        under this lock before it cancels the fill, in whichever process
        serves it; that process may not be the one filling, and the fill may
        end before any cancel reaches it. So either the commit comes first and
        the removal that follows deletes the entry, or the fill sees the record
        gone and commits nothing: a removed image is never cached afterwards.
        """
        with self.jobs.locked():
            record = self.jobs.get(image_id)
            yield record is not None and record['state'] in job_queue.PENDING

    def _supervise(self, job, record):
        """Wait for the fill, saving progress and aborting it if it stalls."""
        last_bytes, last_change, last_saved = job.bytes_done, time.monotonic(), 0.0
        tick = min(PROGRESS_INTERVAL, self.stall_timeout / 4)
        while job.wait(tick) == job.RUNNING:
            now = time.monotonic()
            if self._stopping.is_set():
                job.cancel('the node is stopping')
                job.wait(1.0)
                return 'stopping'
            if job.bytes_done != last_bytes:
                last_bytes, last_change = job.bytes_done, now
            elif job.received_all:
                # The store gave everything; the digests, however long the
                # node's requests keep them waiting, and the last sync are
                # no fetch, and stopping them would only start it all again.
                pass
            elif now - last_change > self.stall_timeout:
                reason = 'no data for %.1f s' % self.stall_timeout
                self.cache.abandon(job, reason)
                return 'stalled: ' + reason
            if now - last_saved >= PROGRESS_INTERVAL:
                last_saved = now
                if self.jobs.update(record['image_id'], bytes_done=last_bytes) is None:
                    job.cancel('removed from the queue')
        return job.state

    def _conclude(self, record, job, outcome):
        image_id = record['image_id']
        if outcome == job.DONE:
            self._cached(record, job.bytes_done)
        elif outcome == 'stopping':
            self.jobs.update(image_id, state=job_queue.QUEUED, bytes_done=0, started_at=None,
                             attempts=max(record['attempts'] - 1, 0))
            job_queue.log_transition(LOG, logging.INFO, image_id, job_queue.CACHING,
                                     job_queue.QUEUED, bytes=job.bytes_done,
                                     reason='the node is stopping; resumed at its next start')
        elif outcome.startswith('stalled'):
            self._failed(record, outcome, transient=True)
        elif outcome == job.CANCELLED:
            if self._stopping.is_set():
                self._conclude(record, job, 'stopping')
            else:
                job_queue.log_transition(LOG, logging.INFO, image_id, job_queue.CACHING,
                                         job_queue.REMOVED, bytes=job.bytes_done,
                                         duration=self._duration(record),
                                         reason='cancelled: %s' % job.cancel_reason)
        else:
            permanent = job.error_kind in (fill.VerificationFailed,) or (
                job.error_kind is not None and issubclass(job.error_kind, errors.NotFound))
            self._failed(record, job.error, transient=not permanent)

    def _cached(self, record, size):
        now = time.time()
        image_id = record['image_id']
        # No record any more means the job was removed after the commit, and
        # whoever removed it also removed the entry (see _still_wanted).
        if self.jobs.update(image_id, state=job_queue.CACHED, bytes_done=size,
                            finished_at=now, last_error=None) is not None:
            job_queue.log_transition(LOG, logging.INFO, image_id, job_queue.CACHING,
                                     job_queue.CACHED, attempt=self._attempt(record),
                                     bytes=size, duration=self._duration(record, now))

    @staticmethod
    def _duration(record, now=None):
        now = now or time.time()
        return now - (record['started_at'] or now)

    def _failed(self, record, reason, transient):
        image_id = record['image_id']
        now = time.time()
        if transient and record['attempts'] < self.max_attempts:
            delay = self.backoff(record['attempts'])
            job_queue.log_transition(LOG, logging.WARNING, image_id, job_queue.CACHING,
                                     job_queue.QUEUED, attempt=self._attempt(record),
                                     duration=self._duration(record, now), retry_in=delay,
                                     reason=reason)
            self.jobs.update(image_id, state=job_queue.QUEUED, last_error=reason,
                             bytes_done=0, next_attempt_at=now + delay)
            self._wakeups.put(None)
        else:
            job_queue.log_transition(LOG, logging.ERROR, image_id, job_queue.CACHING,
                                     job_queue.FAILED, attempt=self._attempt(record),
                                     duration=self._duration(record, now),
                                     permanent=not transient, reason=reason)
            self.jobs.update(image_id, state=job_queue.FAILED, last_error=reason,
                             finished_at=now)

    def backoff(self, attempts):
        """Delay before the attempt after ``attempts``: doubling, capped, jittered."""
        base = min(self.retry_delay * (2 ** max(attempts - 1, 0)), self.retry_max_delay)
        return base * random.uniform(0.5, 1.0)
