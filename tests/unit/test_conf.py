"""Option registration: each ConfigOpts keeps its own values."""

import pytest
from oslo_config import cfg

from glance_cache import conf as gc_conf


def _conf():
    conf = cfg.ConfigOpts()
    gc_conf.register_opts(conf)
    conf([], project='glance-cache-test', default_config_files=[])
    return conf


@pytest.mark.parametrize('group, name, value', [
    ('cache', 'max_size', 10_000), ('api', 'api_limit_max', 7),
    ('database', 'connection', 'sqlite:////elsewhere.db'), ('metrics', 'enabled', False),
    ('cluster', 'node_timeout', 7.0)])
def test_an_override_in_one_configuration_stays_there(group, name, value):
    first, second = _conf(), _conf()
    default = getattr(getattr(second, group), name)
    assert default != value
    first.set_override(name, value, group=group)
    assert getattr(getattr(first, group), name) == value
    assert getattr(getattr(_conf(), group), name) == default
    assert getattr(getattr(second, group), name) == default
