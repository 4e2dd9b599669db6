"""This node as a member of a cluster: registration, heartbeat, holdings and pins.

Nodes share the SQL database (DESIGN.md section 6). Each node:

- registers itself (``node_name`` and ``self_url``) when its caching worker is
  elected, so exactly one process per node writes its heartbeat;
- records each image it commits or drops as it happens, through the cache's
  listener, in whichever of its processes that happens (a thread of that
  process writes it, so that no fill waits on the shared database);
- on every heartbeat (``[cluster] heartbeat_interval``): notes it is alive
  with a snapshot of its queue; makes the recorded holdings match its disk
  (a write that failed earlier is repaired here); drops cached images whose
  image was deleted or deactivated through another node; and queues the
  images pinned to it that it neither holds nor is caching, oldest pin
  first, within its pin budget (``[cache] pinned_max_size``).

A node whose heartbeat is older than ``[cluster] node_timeout`` is down.
"""

import datetime
import functools
import logging
import queue
import threading
import time

from glance_cache import cache as cache_module
from glance_cache.cache import queue as job_queue
from glance_cache.db import api as db_api

LOG = logging.getLogger(__name__)

UP, DOWN = 'up', 'down'
# Seconds a process trusts the pins it read last (eviction must not remove a pin).
PINS_MAX_AGE = 1.0
# Seconds the holdings recorder gathers changes before it writes them.
RECORD_DELAY = 0.05


def self_url(conf):
    """The direct URL of this node: ``[DEFAULT] self_url``, or the address it serves on."""
    if conf.self_url:
        return conf.self_url.rstrip('/')
    host = conf.bind_host
    if host in ('0.0.0.0', '::', ''):
        import socket
        host = socket.getfqdn()
    if ':' in host:
        host = '[%s]' % host
    return 'http://%s:%d' % (host, conf.bind_port)


def pin_budget(conf):
    """Bytes of pinned images this node keeps at most."""
    if conf.cache.pinned_max_size is None:
        return conf.cache.max_size // 2
    return min(conf.cache.pinned_max_size, conf.cache.max_size)


def node_state(node, timeout, now=None):
    """UP or DOWN, by the age of the node's last heartbeat."""
    return UP if heartbeat_age(node, now) <= timeout else DOWN


def heartbeat_age(node, now=None):
    now = now or db_api.utcnow()
    return max((now - node['heartbeat_at']).total_seconds(), 0.0)


class ClusterMember(cache_module.CacheListener):
    """This node's part in the cluster; see the module docstring."""

    def __init__(self, conf, db, cache, jobs, worker, name):
        self.conf = conf
        self.db = db
        self.cache = cache
        self.jobs = jobs
        self.worker = worker
        self.name = name
        self.interval = conf.cluster.heartbeat_interval
        self.budget = pin_budget(conf)
        self.pin_retry_delay = conf.cache.retry_max_delay
        self._stopping = threading.Event()
        self._thread = None
        self._pinned = frozenset()
        self._pinned_read_at = None
        self._pinned_lock = threading.Lock()
        self._changes = queue.Queue()
        self._recorder = None
        self._recorder_lock = threading.Lock()

    @property
    def url(self):
        # Read at use: glance-cache-api sets self_url once it knows its port.
        return self_url(self.conf)

    # -- the cache's listener (any process of the node) --------------------------

    def entry_added(self, image_id, size):
        self._record({image_id: size})

    def entries_removed(self, image_ids):
        self._record(dict.fromkeys(image_ids))
        # Not the cluster's business, but this is the node's one listener:
        # an evicted image's finished job goes with its entry. A failure here
        # must not fail the removal; the next drainer's start sweeps again.
        try:
            self.jobs.drop_cached(image_ids,
                                  lambda image_id: self.cache.get(image_id) is not None)
        except OSError as exc:
            LOG.warning('Could not drop the job records of images %s that left the '
                        'cache: %s', ', '.join(image_ids), exc)

    def _record(self, change):
        """Have the recorder thread write a change ({image id: size, or None if gone})."""
        self._changes.put(change)
        with self._recorder_lock:
            if self._recorder is None or not self._recorder.is_alive():
                self._recorder = threading.Thread(target=self._write_changes,
                                                  name='cluster-holdings', daemon=True)
                self._recorder.start()

    def _write_changes(self):
        """Write what changed, in order, RECORD_DELAY's worth in one transaction.

        A burst of small fills commits a hundred entries a second; written one
        by one, their rows cost the node more than the fills themselves.
        """
        while True:
            batch = [self._changes.get()]
            deadline = time.monotonic() + RECORD_DELAY
            while batch[-1] is not None:
                remaining = deadline - time.monotonic()
                try:
                    batch.append(self._changes.get(timeout=remaining) if remaining > 0
                                 else self._changes.get_nowait())
                except queue.Empty:
                    break
            # A later change of an image overrides an earlier one.
            net = {}
            for change in batch:
                net.update(change or {})
            try:
                if net:
                    self.db.node_images_record(self.name, net)
            except Exception as exc:
                LOG.warning('Could not record a change of what node %s holds (%s); the '
                            'next heartbeat records it', self.name, exc)
            finally:
                for _ in batch:
                    self._changes.task_done()
            if None in batch:
                return

    def wait_recorded(self):
        """Return once every change noted so far is written (or failed to be)."""
        self._changes.join()

    def pinned_ids(self):
        """The images pinned here that fit the pin budget: what eviction must keep.

        Read from the database at most once every PINS_MAX_AGE seconds per
        process (the cache calls this without its lock held). When the
        database cannot be read, the set read last stays in force.
        """
        with self._pinned_lock:
            read_at = self._pinned_read_at
            if read_at is not None and time.monotonic() - read_at < PINS_MAX_AGE:
                return self._pinned
            self._pinned_read_at = time.monotonic()  # one reader; the others use the last set
        try:
            pins = self.db.pins_of_node(self.name)
        except Exception as exc:
            LOG.warning('Could not read the pins of node %s: %s', self.name, exc)
            return self._pinned
        kept = frozenset(pin['image_id'] for pin, _used, fits in self._budgeted(pins) if fits)
        with self._pinned_lock:
            self._pinned = kept
        return kept

    def _budgeted(self, pins):
        """``(pin, bytes pinned before it, whether it fits)`` for the active pins, in order.

        Pins count against the budget oldest first; one that does not fit
        takes nothing from it.
        """
        used = 0
        for pin in pins:
            if pin['status'] != 'active':
                continue
            fits = used + (pin['size'] or 0) <= self.budget
            yield pin, used, fits
            if fits:
                used += pin['size'] or 0

    def pins_changed(self):
        """Pins were added or removed: read them afresh at the next look."""
        with self._pinned_lock:
            self._pinned_read_at = None

    # -- the heartbeat (the drainer process only) --------------------------------

    def start(self):
        """Register the node and start its heartbeat."""
        try:
            self._register()
        except Exception as exc:
            # The heartbeat registers the node once the database answers.
            LOG.error('Could not register node %s: %s', self.name, exc)
        self._thread = threading.Thread(target=self._beat_forever, name='cluster-heartbeat',
                                        daemon=True)
        self._thread.start()

    def _register(self):
        self.db.node_register(self.name, self.url, self.cache.max_size, self.budget)
        LOG.info('Node %s registered at %s (pin budget %d bytes)', self.name, self.url,
                 self.budget)

    def stop(self):
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._recorder is not None:
            self._changes.put(None)
            self._recorder.join(1.0)

    def _beat_forever(self):
        # The first beat at once: it reconciles holdings and pins at start.
        while not self._stopping.is_set():
            try:
                self.beat()
            except Exception:
                LOG.exception('Heartbeat of node %s failed; trying again in %.1f s',
                              self.name, self.interval)
            self._stopping.wait(self.interval)

    def beat(self):
        """One heartbeat: alive, holdings, deleted images, pins."""
        # Pending and failed only: not a record per image the node holds.
        pending, failed = self.jobs.pending(), self.jobs.failed()
        queued = sum(1 for r in pending if r['state'] == job_queue.QUEUED)
        live = self.worker.live_progress() if self.worker else {}
        running = [{'image_id': r['image_id'], 'size': r['size'],
                    'bytes_done': live.get(r['image_id'], r['bytes_done'])}
                   for r in pending if r['state'] == job_queue.CACHING]
        if not self.db.node_heartbeat(self.name, queued, len(failed), running):
            LOG.warning('Node %s was missing from the node registry (forgotten?); '
                        'registering it again', self.name)
            self._register()
        self.wait_recorded()
        added, removed = self.db.node_images_sync(
            self.name, lambda: {e.image_id: e.size for e in self.cache.list()})
        if added or removed:
            LOG.info('Recorded holdings of node %s repaired: %d added, %d removed',
                     self.name, added, removed)
        self._drop_orphans()
        self.pins_changed()
        # Cached records need not be there: a pinned image it holds is skipped
        # before its record is looked at.
        self.reconcile_pins({r['image_id']: r for r in failed + pending})

    def _drop_orphans(self):
        """Drop cached images whose image was deleted or deactivated elsewhere."""
        for image_id in self.db.node_images_orphaned(self.name):
            record = self.jobs.get(image_id)
            self.jobs.remove(image_id)
            self.cache.delete(image_id)
            job_queue.log_transition(LOG, logging.INFO, image_id, record and record['state'],
                                     job_queue.REMOVED, reason='the image was deleted or is '
                                     'no longer active')

    def reconcile_pins(self, records=None):
        """Queue the images pinned here that this node neither holds nor is caching.

        Pins are taken oldest first while they fit the pin budget; the ones
        past it get a failed job saying so. A pinned image whose job failed
        is queued again once ``retry_max_delay`` has passed since.
        """
        if records is None:
            records = {r['image_id']: r for r in self.jobs.all()}
        now = time.time()
        for pin, used, fits in self._budgeted(self.db.pins_of_node(self.name)):
            image_id, size = pin['image_id'], pin['size'] or 0
            record = records.get(image_id)
            if not fits:
                reason = ('over the pin budget of node %s: pinned images before it take '
                          '%d of its %d bytes (pinned_max_size), this one needs %d'
                          % (self.name, used, self.budget, size))
                if self.cache.get(image_id) is None and (
                        record is None or record['last_error'] != reason):
                    self.jobs.record_failure(image_id, size, reason)
                    job_queue.log_transition(LOG, logging.WARNING, image_id,
                                             record and record['state'], job_queue.FAILED,
                                             pinned=True, size=size, reason=reason)
                continue
            if self.cache.get(image_id) is not None:
                continue
            if record is not None and record['state'] in job_queue.PENDING:
                continue
            if record is not None and record['state'] == job_queue.FAILED:
                over_budget = (record['last_error'] or '').startswith('over the pin budget')
                if not over_budget and now - (record['finished_at'] or 0) < self.pin_retry_delay:
                    continue
            self.jobs.enqueue(image_id, size, announce=functools.partial(
                job_queue.log_transition, LOG, logging.INFO, image_id,
                record and record['state'], job_queue.QUEUED, pinned=True, size=size))


def epoch(value):
    """Epoch seconds of a naive UTC timestamp from the database (None stays None)."""
    return value.replace(tzinfo=datetime.UTC).timestamp() if value else None


def describe_node(node, timeout, now=None):
    """The cluster view of one node row (``Database.node_list``)."""
    now = now or db_api.utcnow()
    return {
        'name': node['name'],
        'url': node['url'],
        'state': node_state(node, timeout, now),
        'started_at': epoch(node['started_at']),
        'last_heartbeat': epoch(node['heartbeat_at']),
        'heartbeat_age': round(heartbeat_age(node, now), 3),
        'cached_images': node['cached_images'],
        'cached_bytes': node['cached_bytes'],
        'max_size': node['max_size'],
        'queued_jobs': node['queued_jobs'],
        'failed_jobs': node['failed_jobs'],
        'running_jobs': node['running'],
        'pinned_images': node['pinned_images'],
        'pinned_bytes': node['pinned_bytes'],
        'pinned_max_size': node['pinned_max_size'],
    }
