"""Options of the [DEFAULT] group: where and how a node serves."""

from oslo_config import cfg

server_opts = [
    cfg.HostAddressOpt('bind_host', default='127.0.0.1',
                       help='Address the API server listens on.'),
    cfg.PortOpt('bind_port', default=9292,
                help='Port the API server listens on. 0 lets the operating system choose '
                     'one; the chosen address is logged when the server is ready.'),
    cfg.IntOpt('workers', default=1, min=1,
               help='Number of API server processes.'),
    cfg.IntOpt('threads', default=16, min=1,
               help='Threads per API server process; each serves one connection at a time.'),
    cfg.IntOpt('client_socket_timeout', default=900, min=0,
               help='Seconds a server thread waits on a silent client before giving up.'),
    cfg.URIOpt('self_url', schemes=['http', 'https'],
               help='The direct URL of this node, as other nodes and operators reach it. '
                    'Defaults to http://<bind_host>:<bind_port>.'),
    cfg.StrOpt('node_name',
               help='The name of this node in a cluster. Defaults to the host name.'),
]


def register_opts(conf):
    conf.register_opts(server_opts)


def list_opts():
    return [(None, server_opts)]
