"""The application factory, and ``application`` for any WSGI server.

``glance_cache.wsgi:application`` is built on first access from the config
files named in ``GLANCE_CACHE_CONFIG_FILES`` (comma-separated) or, without it,
from oslo.config's usual places (``/etc/glance-cache/glance-cache.conf`` ...),
so uWSGI, gunicorn or mod_wsgi can serve it with no glance-cache command
involved. ``glance-cache-api`` uses ``build_app`` with the configuration it
parsed from its own command line.
"""

import atexit
import gc
import os
import socket
import threading

from oslo_log import log as logging

from glance_cache import cache, cluster, deploy, policy, store
from glance_cache import conf as gc_conf
from glance_cache.api import cache as cache_api
from glance_cache.api import metrics as metrics_api
from glance_cache.cache import queue as job_queue
from glance_cache.cache import worker
from glance_cache.db import api as db_api

LOG = logging.getLogger(__name__)

PROJECT = gc_conf.PROJECT
CONFIG_FILES_ENV = 'GLANCE_CACHE_CONFIG_FILES'


class Services:
    """What handlers need of the node: config, database, store and policy.

    One instance per process, owned by the application built around it.
    """

    def __init__(self, conf):
        self.conf = conf
        self.db = db_api.Database(conf)
        self.store = store.ImageStore(conf)
        self.policy = policy.Enforcer(conf)
        self.cache = self.jobs = self.worker = self.member = self.exporter = None
        self.cache_listing = cache_api.CachedListing()
        self.encoded_jobs = cache_api.EncodedJobs()
        self.node = conf.node_name or socket.gethostname()
        if conf.cache.enabled:
            self.cache = cache.ImageCache(conf)
            self.jobs = job_queue.JobQueue(self.cache.dir, self.node)
            self.worker = worker.CacheWorker(conf, self.cache, self.jobs, self.db, self.store)
            self.member = cluster.ClusterMember(conf, self.db, self.cache, self.jobs,
                                                self.worker, self.node)
            self.cache.listener = self.member
            # The process that drains the node's queue also beats its heart.
            self.worker.on_elected.append(self.member.start)
        if conf.metrics.enabled:
            self.exporter = metrics_api.Exporter(self)
            if conf.metrics.bind_port is not None:
                if self.worker is not None:
                    self.worker.on_elected.append(self._serve_metrics)
                else:
                    self._serve_metrics()

    def _serve_metrics(self):
        try:
            self.exporter.serve(self.conf.metrics.bind_host, self.conf.metrics.bind_port)
        except OSError as exc:
            LOG.error('Cannot serve metrics on %s:%d: %s', self.conf.metrics.bind_host,
                      self.conf.metrics.bind_port, exc)

    def start(self):
        """Start the background parts: the caching worker (or its standby)."""
        if self.worker is not None:
            self.worker.start()

    def stop(self):
        """Stop the worker; a running fill stops within a second and stays queued."""
        if self.exporter is not None:
            self.exporter.stop()
        if self.member is not None:
            self.member.stop()
        if self.worker is not None:
            self.worker.stop()
        if self.jobs is not None:
            self.jobs.close()
        if self.cache is not None:
            self.cache.close()

    @staticmethod
    def target(image):
        return policy.ImageTarget(image)


parse_config = gc_conf.parse_config


def prepare_database(conf):
    """Create the schema of an empty database (the node's first start)."""
    database = db_api.Database(conf)
    try:
        database.ensure_schema()
    finally:
        database.dispose()


def build_app(conf):
    """The WSGI application of a node for an already parsed configuration."""
    prepare_database(conf)
    services = Services(conf)
    services.start()
    # The one worker of this process stops with it (SIGTERM under gunicorn
    # ends the worker process through sys.exit, which runs atexit handlers).
    atexit.register(services.stop)
    LOG.info('glance-cache node ready: database %s, store %s',
             services.db.engine.url.render_as_string(hide_password=True),
             conf.glance_store.default_store)
    app = deploy.build(conf, services)
    # The libraries loaded by now (SQLAlchemy, oslo, glance_store ...) are a
    # few hundred thousand objects that live as long as the process. Left to
    # the collector, every full collection walks them all, stalling every
    # thread of the process for about 100 ms at a time (bench/cache_api.py
    # saw it as a p99 of 90 ms from PUT to cached); frozen, they are never
    # walked again. With them out of its count the collector would run full
    # collections far more often: the last threshold keeps them rare.
    gc.collect()
    gc.freeze()
    gc.set_threshold(700, 10, 1000)
    return app


_lock = threading.Lock()
_application = None


def _load_application():
    global _application
    with _lock:
        if _application is None:
            files = [f for f in os.environ.get(CONFIG_FILES_ENV, '').split(',') if f]
            conf = parse_config([], default_config_files=files or None)
            _application = build_app(conf)
    return _application


def __getattr__(name):
    # Build ``application`` lazily so that importing this module has no effects.
    if name == 'application':
        return _load_application()
    raise AttributeError(name)
