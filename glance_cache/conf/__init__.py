"""Configuration: every option group of glance-cache, registered on one ConfigOpts.

``register_opts`` is called by the application factory and the commands;
``list_opts`` feeds oslo-config-generator (namespace ``glance_cache``).
"""

import logging as std_logging

from oslo_config import cfg
from oslo_log import log as logging

from glance_cache.conf import api, cache, cluster, database, default, metrics

CONF = cfg.CONF

_MODULES = (default, api, database, cache, cluster, metrics)

# Defaults that differ from those of the libraries we embed: the embedded
# configuration keeps everything under ./data so that `make run` needs nothing.
STORE_DATADIR_DEFAULT = 'data/images'
STORE_CHUNK_SIZE_DEFAULT = 1024 * 1024
# GET /healthcheck checks the database and the cache directory (glance_cache/health.py).
HEALTHCHECK_BACKENDS = ['glance_cache_database', 'glance_cache_cache_dir']


PROJECT = 'glance-cache'

LOG = logging.getLogger(__name__)


def parse_config(argv, conf=None, default_config_files=None, store_opts=True):
    """Register every option on ``conf`` (cfg.CONF by default), parse ``argv``, set up logs.

    Light on purpose: commands that never build the application import this
    and nothing of the rest of the service. ``store_opts=False`` skips
    glance_store's options, whose registration imports every store driver
    (half a second) and which only the server uses.
    """
    from glance_cache.conf import cache as cache_conf
    conf = conf if conf is not None else cfg.CONF
    register_opts(conf, store_opts=store_opts)
    conf(argv, project=PROJECT, default_config_files=default_config_files)
    if not conf.log_file and not conf.log_dir:
        # Without a log file, log to stderr (oslo.log's own fallback is stdout).
        conf.set_default('use_stderr', True)
    logging.setup(conf, PROJECT)
    cache_conf.warn_removed(conf, LOG)
    return conf


def register_opts(conf, store_opts=True):
    """Register all of glance-cache's own options and the libraries' on ``conf``."""
    for module in _MODULES:
        module.register_opts(conf)
    logging.register_options(conf)
    _register_healthcheck_opts(conf)
    if store_opts:
        _register_store_opts(conf)
        set_external_defaults()


def _register_store_opts(conf):
    import glance_store
    # glance_store imports every driver to list its options; drivers whose
    # client libraries are not installed (cinder needs os-brick) only warn.
    stevedore_log = std_logging.getLogger('stevedore.extension')
    level = stevedore_log.level
    stevedore_log.setLevel(std_logging.CRITICAL)
    try:
        glance_store.register_opts(conf)
    finally:
        stevedore_log.setLevel(level)


def _register_healthcheck_opts(conf):
    from oslo_middleware.healthcheck import opts as healthcheck_opts
    cfg.set_defaults(healthcheck_opts.HEALTHCHECK_OPTS, backends=HEALTHCHECK_BACKENDS)
    conf.register_opts(healthcheck_opts.HEALTHCHECK_OPTS, group='healthcheck')


def set_external_defaults():
    """Set our defaults on options that belong to glance_store and oslo.middleware."""
    from oslo_middleware.healthcheck import opts as healthcheck_opts
    cfg.set_defaults(healthcheck_opts.HEALTHCHECK_OPTS, backends=HEALTHCHECK_BACKENDS)
    from glance_store._drivers import filesystem
    # 1 MiB reads and writes: glance_store's 64 KiB costs a Python round trip
    # per 64 KiB on every upload, download and cache fill.
    cfg.set_defaults(filesystem._FILESYSTEM_CONFIGS,
                     filesystem_store_datadir=STORE_DATADIR_DEFAULT,
                     filesystem_store_chunk_size=STORE_CHUNK_SIZE_DEFAULT)


def list_opts():
    """Our option groups, for oslo-config-generator."""
    result = []
    for module in _MODULES:
        result.extend(module.list_opts())
    return result
