"""The plugin's option group, ``[glance_cache]``."""

from oslo_config import cfg

group = cfg.OptGroup(name='glance_cache', title='glance-cache tempest plugin options')

opts = [
    cfg.BoolOpt('enabled', default=False,
                help='Run the glance-cache API tests: the node-local cache API (v2.14+) and '
                     'its caching jobs are deployed and admin-only.'),
    cfg.StrOpt('remote_service_type', default=None,
               help='Catalog service type of a second glance-cache node with a cache of its '
                    'own, for the per-node tests; unset skips them.'),
    cfg.IntOpt('large_image_size', default=32 * 1024 * 1024, min=1024,
               help='Bytes of the image used to watch a caching job progress.'),
    cfg.IntOpt('cache_timeout', default=60, min=1,
               help='Seconds to wait for an image to be cached or dropped.'),
]
