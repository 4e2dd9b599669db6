"""glance-cache-api: serve one node in the foreground.

``--server gunicorn`` (the default) runs the application under gunicorn's
threaded worker with ``[DEFAULT] workers`` processes. ``--server eventlet``
serves it from one eventlet-monkey-patched process, for deployments that
still run OpenStack services that way; the caching worker is then the green
thread that drains the queue. SIGTERM stops either gracefully.

This module imports nothing heavy at the top: eventlet must patch the
standard library before threading, socket and the rest are imported.
"""

import os
import sys

SERVERS = ('gunicorn', 'eventlet')
# How gunicorn serves a node (bench/_bare.py serves its reference the same way).
GUNICORN_WORKER_CLASS = 'gthread'
# Seconds an idle kept-alive client connection stays open.
GUNICORN_KEEPALIVE = 75
# prometheus_client reads it when first imported; see glance_cache/metrics.py.
METRICS_DIR_ENV = 'PROMETHEUS_MULTIPROC_DIR'


def _requested_server(argv):
    for i, arg in enumerate(argv):
        if arg == '--server' and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('--server='):
            return arg.split('=', 1)[1]
    return 'gunicorn'


def _serve_gunicorn(conf):
    from gunicorn.app.base import BaseApplication
    from oslo_log import log as logging

    from glance_cache import wsgi
    from glance_cache.cache import cpus

    log = logging.getLogger(__name__)
    if conf.workers > 1:
        # The server processes are this one's children: the one running the
        # node's fills moves the others' threads too (see cpus.py).
        os.environ[cpus.SERVER_PID_ENV] = str(os.getpid())

    class NodeServer(BaseApplication):
        def load_config(self):
            settings = {
                'bind': '%s:%d' % (conf.bind_host, conf.bind_port),
                'workers': conf.workers,
                'worker_class': GUNICORN_WORKER_CLASS,
                'threads': conf.threads,
                'timeout': conf.client_socket_timeout,
                'graceful_timeout': 30,
                'keepalive': GUNICORN_KEEPALIVE,
                'accesslog': None,
                'errorlog': '-',
                'loglevel': 'debug' if conf.debug else 'info',
                'proc_name': 'glance-cache-api',
                'when_ready': lambda server: _ready(
                    conf, log, [listener.sock.getsockname() for listener in server.LISTENERS]),
                'control_socket_disable': True,
            }
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self):
            return wsgi.build_app(conf)

    NodeServer().run()


def _serve_eventlet(conf):
    import signal

    import eventlet
    import eventlet.wsgi
    from oslo_log import log as logging

    from glance_cache import wsgi

    log = logging.getLogger(__name__)
    sock = eventlet.listen((conf.bind_host, conf.bind_port))

    serving = eventlet.getcurrent()

    def stop(signum, frame):
        # Raise in the serving green thread, not in the hub that took the
        # signal: leaving server() ends the process and atexit stops the worker.
        eventlet.spawn_after(0, serving.throw, SystemExit(0))

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _ready(conf, log, [sock.getsockname()])
    app = wsgi.build_app(conf)
    try:
        eventlet.wsgi.server(sock, app, log=_EventletLog(log), max_size=conf.threads * 64,
                             socket_timeout=conf.client_socket_timeout or None,
                             keepalive=True)
    except SystemExit:
        log.info('glance-cache-api stopping')


class _EventletLog:
    """eventlet.wsgi writes its own lines; route them to oslo.log at debug."""

    def __init__(self, log):
        self._log = log

    def write(self, message):
        self._log.debug(message.rstrip())


def _ready(conf, log, addresses):
    """The server listens: note the port it really has, then say so.

    Runs before the application is built (gunicorn builds it in each worker
    process after this), so that a node started with ``bind_port = 0`` and
    no ``self_url`` registers the URL it really answers on.
    """
    if addresses and not conf.bind_port:
        conf.set_override('bind_port', addresses[0][1])
    _announce(log, addresses)


def _announce(log, addresses):
    for host, port in (address[:2] for address in addresses):
        # Tests and scripts wait for this line to learn the port chosen for bind_port 0.
        log.info('glance-cache-api listening on http://%s:%d', host, port)
        print('glance-cache-api listening on http://%s:%d' % (host, port), file=sys.stderr,
              flush=True)


def _metrics_directory():
    """Give the node's processes one empty directory to count their metrics in.

    An operator's PROMETHEUS_MULTIPROC_DIR is used (and emptied: counters
    start again at zero with the node); otherwise a temporary directory,
    removed when the server stops.
    """
    import atexit
    import shutil
    import tempfile

    directory = os.environ.get(METRICS_DIR_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith('.db'):
                os.unlink(os.path.join(directory, name))
        return
    directory = tempfile.mkdtemp(prefix='glance-cache-metrics-')
    os.environ[METRICS_DIR_ENV] = directory
    server_pid = os.getpid()
    # Forked server processes inherit the handler; only this one removes it.
    atexit.register(lambda: os.getpid() == server_pid and shutil.rmtree(directory, True))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    server = _requested_server(argv)
    if server == 'eventlet':
        import eventlet
        eventlet.monkey_patch()
    _metrics_directory()

    from oslo_config import cfg

    from glance_cache import wsgi

    conf = cfg.CONF
    conf.register_cli_opts([
        cfg.StrOpt('server', default='gunicorn', choices=SERVERS,
                   help='The WSGI server that serves the node.'),
    ])
    wsgi.parse_config(argv, conf)
    # Migrate an empty database once, before any server process starts.
    wsgi.prepare_database(conf)
    if conf.server == 'eventlet':
        _serve_eventlet(conf)
    else:
        _serve_gunicorn(conf)
    return 0


if __name__ == '__main__':
    sys.exit(main())
