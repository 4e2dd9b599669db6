"""Configuration: every option group of glance-cache, registered on one ConfigOpts.

``register_opts`` is called by the application factory and the commands;
``list_opts`` feeds oslo-config-generator (namespace ``glance_cache``).
"""

import logging as std_logging

from oslo_config import cfg
from oslo_log import log as logging

from glance_cache.conf import api, cache, database, default

CONF = cfg.CONF

_MODULES = (default, api, database, cache)

# Defaults that differ from those of the libraries we embed: the embedded
# configuration keeps everything under ./data so that `make run` needs nothing.
STORE_DATADIR_DEFAULT = 'data/images'
STORE_CHUNK_SIZE_DEFAULT = 1024 * 1024


def register_opts(conf):
    """Register all of glance-cache's own options and the libraries' on ``conf``."""
    for module in _MODULES:
        module.register_opts(conf)
    logging.register_options(conf)
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


def set_external_defaults():
    """Set our defaults on options that belong to glance_store."""
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
