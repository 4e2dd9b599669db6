"""Options of the [metrics] group: the node's Prometheus metrics."""

from oslo_config import cfg

from glance_cache.conf import groups

metrics_group = cfg.OptGroup('metrics', title='Prometheus metrics')

metrics_opts = [
    cfg.BoolOpt('enabled', default=True,
                help='Serve Prometheus metrics (queue, jobs, fills, hits, evictions, cache '
                     'size, node heartbeats) without authentication. Where: see bind_port.'),
    cfg.HostAddressOpt('bind_host', default='127.0.0.1',
                       help='Address of the separate metrics listener (with bind_port).'),
    cfg.PortOpt('bind_port',
                help='When set, metrics are served at http://bind_host:bind_port/metrics by '
                     'a listener of their own, run by the process that runs the node\'s '
                     'caching worker, and not on the API port. When unset, /metrics is '
                     'served on the API port.'),
]


def register_opts(conf):
    groups.register(conf, metrics_group, metrics_opts)


def list_opts():
    return [(metrics_group, metrics_opts)]
