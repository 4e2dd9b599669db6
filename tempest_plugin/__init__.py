"""glance-cache's tempest plugin: config options, a cache service client and API tests."""
