"""Fixtures for cache tests: a real ImageCache over a temporary directory."""

import hashlib
import os

import pytest
from oslo_config import cfg

from glance_cache import cache as cache_module
from glance_cache import conf as gc_conf


def make_conf(cache_dir, **cache_options):
    conf = cfg.ConfigOpts()
    gc_conf.register_opts(conf)
    conf([], project='glance-cache-test', default_config_files=[])
    conf.set_override('cache_dir', str(cache_dir), group='cache')
    for name, value in cache_options.items():
        conf.set_override(name, value, group='cache')
    return conf


def image_for(data, image_id):
    return {'id': image_id, 'size': len(data), 'checksum': hashlib.md5(data).hexdigest(),
            'os_hash_algo': 'sha512', 'os_hash_value': hashlib.sha512(data).hexdigest(),
            'status': 'active'}


def cached_bytes(cache, image_id):
    """The committed entry of ``image_id`` in ``cache``, read whole."""
    cached = cache.open(image_id)
    try:
        return cached.read()
    finally:
        cached.close()


def held_open(path):
    """Whether this process holds a descriptor of the file at ``path``."""
    return any(os.path.realpath('/proc/self/fd/%s' % fd) == str(path)
               for fd in os.listdir('/proc/self/fd'))


def deleted_files_open(directory):
    """Paths of the unlinked files under ``directory`` this process still holds open."""
    held = []
    for name in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink('/proc/self/fd/%s' % name)
        except OSError:
            continue   # the listing's own descriptor, closed meanwhile
        if target.endswith(' (deleted)') and target.startswith(os.path.join(directory, '')):
            held.append(target[:-len(' (deleted)')])
    return held


@pytest.fixture(params=['sqlite', 'xattr'])
def driver_name(request):
    return request.param


@pytest.fixture
def cache_factory(tmp_path, driver_name):
    caches = []

    def make(**options):
        options.setdefault('driver', driver_name)
        c = cache_module.ImageCache(make_conf(tmp_path / 'cache', **options))
        caches.append(c)
        return c

    yield make
    for c in caches:
        c.close()
