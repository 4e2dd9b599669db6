"""Options of the [cache] group: the node-local image cache."""

from oslo_config import cfg

from glance_cache.conf import groups

cache_group = cfg.OptGroup('cache', title='Node-local image cache')

cache_opts = [
    cfg.BoolOpt('enabled', default=True,
                help='Serve downloads from, and fill, this node\'s image cache. When off, '
                     'downloads stream from the store and the cache API is absent.'),
    cfg.StrOpt('cache_dir', default='data/cache',
               help='Directory of the cache: committed images named by id, incomplete/ '
                    'for fills in progress, invalid/ for data that failed verification, '
                    'and the driver\'s metadata.'),
    cfg.StrOpt('driver', default='sqlite', choices=[
        ('sqlite', 'Metadata in a SQLite file in cache_dir.'),
        ('xattr', 'Metadata in extended attributes of the cached files (the file '
                  'system must support user xattrs).'),
    ], help='Where the cache keeps its metadata (hits, last access).'),
    cfg.IntOpt('max_size', default=10 * 1024 ** 3, min=1,
               help='Most bytes the cache may hold, fills in progress included. An image '
                    'larger than this is never cached.'),
    cfg.FloatOpt('low_watermark', default=0.8, min=0.0, max=1.0,
                 help='Fraction of max_size that eviction frees the cache down to, least '
                      'recently accessed entries first, when a fill would pass max_size.'),
    cfg.IntOpt('stall_time', default=86400, min=1,
               help='Seconds after which an incomplete fill that no longer grows is '
                    'considered dead and its file removed by cleaning.'),
    cfg.IntOpt('pinned_max_size', min=0,
               help='Most bytes of pinned images this node keeps; pinned images are never '
                    'evicted. A pin that would take a node past it is refused, and a node '
                    'that joins with less room caches its oldest pins first and reports '
                    'the others as failed. Defaults to half of max_size; at most max_size.'),
    cfg.IntOpt('chunk_size', default=1024 * 1024, min=4096,
               help='Bytes per read when filling the cache and serving from it.'),
    cfg.BoolOpt('kernel_copy', default=True,
                help='Let the kernel copy images of 8 MiB or more from the filesystem store '
                     'into the cache (copy_file_range, or sendfile between file systems it '
                     'cannot copy across), rather than passing their bytes through the '
                     'server process. Either way the cache\'s file is hashed and verified '
                     'before it is served. Turn it off on a file system whose '
                     'copy_file_range is not to be trusted (some network and FUSE file '
                     'systems), or to compare the two.'),
    cfg.IntOpt('worker_threads', default=1, min=1,
               help='Images the caching worker fills at the same time.'),
    cfg.IntOpt('fill_cpu_reserve', default=1, min=0,
               help='CPUs kept free of background fills, those the caching worker runs '
                    'for PUT /v2/cache while no client downloads the image, so that a node '
                    'with few CPUs keeps answering requests promptly while it caches. With '
                    'N usable CPUs such fills run on the N - fill_cpu_reserve '
                    'highest-numbered ones, and on one at least; on a node with two CPUs '
                    'that makes a single large fill about half as fast. While fills of 32 '
                    'MiB or more run that can keep every fill CPU busy (three CPUs each), '
                    'the other threads of the server processes (those answering requests) '
                    'keep to the reserved CPUs. A download of the '
                    'image lifts the limit for its fill. 0 lets background fills use every '
                    'CPU. Linux only; no effect under --server eventlet.'),
    cfg.IntOpt('max_attempts', default=5, min=1,
               help='Attempts at caching an image before its job is marked failed. Only '
                    'transient failures (store I/O, connection errors, stalls) are retried; '
                    'a deleted or inactive image, or data that fails verification, is not.'),
    cfg.FloatOpt('fetch_stall_timeout', default=60.0, min=0.1,
                 help='Seconds a fill may go without receiving data before it is aborted '
                      'and retried. There is no limit on a fill that keeps progressing, '
                      'nor on the hashing and syncing once every byte is received.'),
    cfg.FloatOpt('retry_delay', default=2.0, min=0.0,
                 help='Delay before the second attempt; each further attempt waits twice '
                      'as long, up to retry_max_delay, with random jitter of up to half.'),
    cfg.FloatOpt('retry_max_delay', default=300.0, min=0.0,
                 help='Longest delay between two attempts.'),
    cfg.FloatOpt('poll_interval', default=1.0, min=0.01,
                 help='Seconds between the caching worker\'s looks at the queue when no '
                      'wake-up reached it (work queued by another process of the node), and '
                      'between a standby process\'s attempts to become the worker.'),
    cfg.FloatOpt('burst_max_hold', default=0.25, min=0.0,
                 help='While a burst of new jobs arrives (two or more waiting to start), '
                      'the caching worker\'s next start waits until none has come for '
                      '20 ms, for at most this many seconds at a time: the '
                      'requests of the burst are answered sooner than with fills started '
                      'among them, and the images cached about as soon. A lone job always '
                      'starts at once. 0 starts every job at once.'),
]

removed_opts = [
    cfg.IntOpt('cache_prefetcher_interval',
               help='Removed: immediate caching replaced the periodic prefetcher. A value '
                    'set here is ignored and logged as a warning.'),
]


def register_opts(conf):
    groups.register(conf, cache_group, cache_opts)
    conf.register_opts(removed_opts)


def list_opts():
    return [(cache_group, cache_opts)]


def warn_removed(conf, log):
    """Log once that a removed option is set (it is otherwise ignored)."""
    if conf.cache_prefetcher_interval is not None:
        log.warning('cache_prefetcher_interval is set but no longer exists: immediate '
                    'caching replaced the periodic prefetcher (PUT /v2/cache/{image_id} '
                    'starts caching at once). The value is ignored; remove it.')
