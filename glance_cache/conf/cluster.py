"""Options of the [cluster] group: nodes that share one database and store."""

from oslo_config import cfg

from glance_cache.conf import groups

cluster_group = cfg.OptGroup('cluster', title='Several nodes sharing one database and store')

cluster_opts = [
    cfg.FloatOpt('heartbeat_interval', default=10.0, min=0.1,
                 help='Seconds between two heartbeats of this node. On each, the node '
                      'records that it is alive with a snapshot of its queue, reconciles '
                      'the images it is recorded to hold with its disk, drops cached '
                      'images whose image was deleted, and queues the images pinned to it '
                      'that it does not hold.'),
    cfg.FloatOpt('node_timeout', default=60.0, min=0.1,
                 help='Seconds without a heartbeat after which a node is reported down. '
                      'Requests passed on to several nodes skip a down node and report it '
                      'as down. Keep it a few times heartbeat_interval; nodes\' clocks must '
                      'agree to well within it (NTP).'),
    cfg.FloatOpt('forward_timeout', default=30.0, min=0.1,
                 help='Seconds to wait for another node\'s answer to a request passed on '
                      'to it; a node that does not answer in time is reported as failed '
                      'and never holds up the answers of the others.'),
]


def register_opts(conf):
    groups.register(conf, cluster_group, cluster_opts)


def list_opts():
    return [(cluster_group, cluster_opts)]
