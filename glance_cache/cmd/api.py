"""glance-cache-api: serve one node in the foreground.

``--server gunicorn`` (the default) runs the application under gunicorn's
threaded worker with ``[DEFAULT] workers`` processes. SIGTERM stops it
gracefully: running requests finish, then the processes exit.
"""

import sys

from oslo_config import cfg
from oslo_log import log as logging

from glance_cache import wsgi

LOG = logging.getLogger(__name__)

cli_opts = [
    cfg.StrOpt('server', default='gunicorn', choices=['gunicorn'],
               help='The WSGI server that serves the node.'),
]


def _serve_gunicorn(conf):
    from gunicorn.app.base import BaseApplication

    class NodeServer(BaseApplication):
        def load_config(self):
            settings = {
                'bind': '%s:%d' % (conf.bind_host, conf.bind_port),
                'workers': conf.workers,
                'worker_class': 'gthread',
                'threads': conf.threads,
                'timeout': conf.client_socket_timeout,
                'graceful_timeout': 30,
                'keepalive': 75,
                'accesslog': None,
                'errorlog': '-',
                'loglevel': 'debug' if conf.debug else 'info',
                'proc_name': 'glance-cache-api',
                'when_ready': _announce,
                'control_socket_disable': True,
            }
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self):
            return wsgi.build_app(conf)

    NodeServer().run()


def _announce(server):
    for listener in server.LISTENERS:
        host, port = listener.sock.getsockname()[:2]
        # Tests and scripts wait for this line to learn the port chosen for bind_port 0.
        LOG.info('glance-cache-api listening on http://%s:%d', host, port)
        print('glance-cache-api listening on http://%s:%d' % (host, port),
              file=sys.stderr, flush=True)


def main(argv=None):
    conf = cfg.CONF
    conf.register_cli_opts(cli_opts)
    wsgi.parse_config(sys.argv[1:] if argv is None else argv, conf)
    # Migrate an empty database once, before any worker process starts.
    wsgi.prepare_database(conf)
    _serve_gunicorn(conf)
    return 0


if __name__ == '__main__':
    sys.exit(main())
