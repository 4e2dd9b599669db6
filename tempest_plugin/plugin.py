"""The tempest plugin class, found through the ``tempest.test_plugins`` entry point."""

import os

from tempest import config
from tempest.test_discover import plugins

from tempest_plugin import config as cache_config


class GlanceCacheTempestPlugin(plugins.TempestPlugin):

    def load_tests(self):
        package_dir = os.path.dirname(os.path.abspath(__file__))
        return os.path.join(package_dir, 'tests'), os.path.dirname(package_dir)

    def register_opts(self, conf):
        config.register_opt_group(conf, cache_config.group, cache_config.opts)

    def get_opt_lists(self):
        return [(cache_config.group.name, cache_config.opts)]

    def get_service_clients(self):
        return []
