"""Options of the [cache] group: the node-local image cache."""

from oslo_config import cfg

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
    cfg.IntOpt('chunk_size', default=1024 * 1024, min=4096,
               help='Bytes per read when filling the cache and serving from it.'),
]


def register_opts(conf):
    conf.register_group(cache_group)
    conf.register_opts(cache_opts, group=cache_group)


def list_opts():
    return [(cache_group, cache_opts)]
