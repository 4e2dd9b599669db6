"""Prometheus metrics of a node.

Two kinds:

- events, counted where they happen in whichever server process they happen
  in: fills started, succeeded, failed (by reason) and cancelled, bytes
  fetched from the store, fill durations, cache hits and misses, evictions;
- state, read when scraped: the queue (jobs by state, the running jobs'
  bytes), the cache's bytes and entries, and each node's heartbeat age.

A node with several server processes counts events in prometheus_client's
multiprocess mode: ``glance-cache-api`` points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh directory before any process starts, and a scrape of any process
adds up all of them. Under another WSGI server, set that variable to an
empty directory for the same effect; without it each process counts alone.

Names start with ``glance_cache_``; counters end in ``_total``. This module
holds the event counters and imports nothing of the service, so that any
module may count; api/metrics.py reads the state and serves scrapes.
"""

import os

import prometheus_client

MULTIPROC_ENV = 'PROMETHEUS_MULTIPROC_DIR'
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

FILLS_STARTED = prometheus_client.Counter(
    'glance_cache_fills_started', 'Cache fills started, by the worker or by a download.')
FILLS_SUCCEEDED = prometheus_client.Counter(
    'glance_cache_fills_succeeded', 'Cache fills verified and committed.')
FILLS_FAILED = prometheus_client.Counter(
    'glance_cache_fills_failed',
    'Cache fills that failed: verification (data did not match the image record), store '
    '(the store or the network), disk (the cache\'s own disk), stalled (no data for '
    'fetch_stall_timeout), other.', ['reason'])
FILLS_CANCELLED = prometheus_client.Counter(
    'glance_cache_fills_cancelled',
    'Cache fills cancelled: the image was removed from the cache or queue, deleted, or the '
    'node stopped.')
FETCHED_BYTES = prometheus_client.Counter(
    'glance_cache_fetched_bytes', 'Bytes read from the store into the cache.')
FILL_DURATION = prometheus_client.Histogram(
    'glance_cache_fill_duration_seconds', 'Duration of successful cache fills.',
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))
HITS = prometheus_client.Counter(
    'glance_cache_hits', 'Downloads served from the cache.')
MISSES = prometheus_client.Counter(
    'glance_cache_misses', 'Downloads of images the cache did not hold.')
EVICTIONS = prometheus_client.Counter(
    'glance_cache_evictions', 'Entries evicted to keep the cache within max_size.')
EVICTED_BYTES = prometheus_client.Counter(
    'glance_cache_evicted_bytes', 'Bytes of the entries evicted.')


EVENT_METRICS = (FILLS_STARTED, FILLS_SUCCEEDED, FILLS_FAILED, FILLS_CANCELLED, FETCHED_BYTES,
                 FILL_DURATION, HITS, MISSES, EVICTIONS, EVICTED_BYTES)
FAILURE_REASONS = ('verification', 'store', 'disk', 'stalled', 'other')
# Every reason is exported from the start, at 0, so that rates work from the first scrape.
for _reason in FAILURE_REASONS:
    FILLS_FAILED.labels(reason=_reason)


def prepare_multiprocess_dir(directory):
    """Point prometheus_client at an empty ``directory`` before any metric is counted.

    Must run before this module is imported (prometheus_client reads the
    variable when it is first imported).
    """
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith('.db'):
            os.unlink(os.path.join(directory, name))
    os.environ[MULTIPROC_ENV] = directory
