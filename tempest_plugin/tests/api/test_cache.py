"""glance-cache's node-local cache API through Keystone, as tempest sees it.

The cache of a node is shared by every test that talks to it and ``clear`` empties
all of it, so these tests expect to run serially (``tempest run --serial``).
"""

import io
import os

from tempest import config
from tempest.api.image import base
from tempest.lib import decorators
from tempest.lib import exceptions as lib_exc
from tempest.lib.common.utils import test_utils

from tempest_plugin.services import cache_client

CONF = config.CONF
POLL_INTERVAL = 0.2


def _cache_client(manager, service):
    return cache_client.CacheClient(
        manager.auth_provider, service, CONF.identity.region,
        endpoint_type=CONF.image.endpoint_type, **manager.default_params)


class CacheTestBase(base.BaseV2ImageTest):
    credentials = ['primary', 'admin', 'project_reader']

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.glance_cache.enabled:
            raise cls.skipException('[glance_cache] enabled is False')

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.admin_cache = _cache_client(cls.os_admin, CONF.image.catalog_type)
        cls.member_cache = _cache_client(cls.os_primary, CONF.image.catalog_type)
        cls.reader_cache = _cache_client(cls.os_project_reader, CONF.image.catalog_type)
        cls.admin_images = cls.os_admin.image_client_v2

    def active_image(self, size=1024):
        image = self.create_image(container_format='bare', disk_format='raw',
                                  visibility='private')
        self.client.store_image_file(image['id'], io.BytesIO(os.urandom(size)))
        body = self.client.show_image(image['id'])
        self.assertEqual('active', body['status'])
        self.assertEqual(size, body['size'])
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.admin_cache.delete_cached_image, image['id'])
        return body

    def wait_until(self, predicate, what):
        if not test_utils.call_until_true(predicate, CONF.glance_cache.cache_timeout,
                                          POLL_INTERVAL):
            self.fail('timed out after %ss waiting for %s'
                      % (CONF.glance_cache.cache_timeout, what))

    @staticmethod
    def cached_ids(client):
        return [e['image_id'] for e in client.list_cache()['cached_images']]

    def wait_cached(self, image_id, client=None):
        client = client or self.admin_cache
        self.wait_until(lambda: image_id in self.cached_ids(client),
                        'image %s to be cached' % image_id)


class CacheApiTest(CacheTestBase):

    @decorators.idempotent_id('5d0f6c0e-2b6e-4c1b-9a55-0f0c7d3f9a01')
    def test_caching_cycle(self):
        image_id = self.active_image()['id']
        self.admin_cache.queue_image(image_id)
        self.wait_cached(image_id)
        job = self.admin_cache.show_job(image_id)
        self.assertEqual('cached', job['state'])
        self.assertEqual(1024, job['bytes_done'])

        self.admin_cache.delete_cached_image(image_id)
        body = self.admin_cache.list_cache()
        self.assertNotIn(image_id, [e['image_id'] for e in body['cached_images']])
        self.assertNotIn(image_id, body['queued_images'])

        self.admin_cache.queue_image(image_id)
        self.wait_cached(image_id)
        self.admin_cache.clear_cache(target='queue')
        self.assertIn(image_id, self.cached_ids(self.admin_cache))
        self.admin_cache.clear_cache(target='cache')
        self.assertNotIn(image_id, self.cached_ids(self.admin_cache))

        self.admin_cache.queue_image(image_id)
        self.wait_cached(image_id)
        self.admin_cache.clear_cache()
        body = self.admin_cache.list_cache()
        self.assertEqual({'cached_images': [], 'queued_images': []}, dict(body))
        self.assertRaises(lib_exc.BadRequest, self.admin_cache.clear_cache, target='invalid')

    @decorators.idempotent_id('5d0f6c0e-2b6e-4c1b-9a55-0f0c7d3f9a02')
    def test_unknown_image_is_404_and_inactive_400(self):
        self.assertRaises(lib_exc.NotFound, self.admin_cache.queue_image,
                          'non-existing-image-id')
        self.assertRaises(lib_exc.NotFound, self.admin_cache.queue_image,
                          '3a1e2c3d-0000-4000-8000-000000000000')
        self.assertRaises(lib_exc.NotFound, self.admin_cache.delete_cached_image,
                          '3a1e2c3d-0000-4000-8000-000000000000')
        queued = self.create_image(container_format='bare', disk_format='raw')
        self.assertEqual('queued', queued['status'])
        self.assertRaises(lib_exc.BadRequest, self.admin_cache.queue_image, queued['id'])

    @decorators.idempotent_id('5d0f6c0e-2b6e-4c1b-9a55-0f0c7d3f9a03')
    def test_repeated_queue_is_idempotent(self):
        image_id = self.active_image()['id']
        self.admin_cache.queue_image(image_id)
        self.admin_cache.queue_image(image_id)
        self.wait_cached(image_id)
        first = self.admin_cache.show_job(image_id)
        self.admin_cache.queue_image(image_id)
        body = self.admin_cache.list_cache()
        self.assertEqual(1, [e['image_id'] for e in body['cached_images']].count(image_id))
        self.assertNotIn(image_id, body['queued_images'])
        again = self.admin_cache.show_job(image_id)
        self.assertEqual('cached', again['state'])
        self.assertEqual(first['attempts'], again['attempts'])
        jobs = [j['image_id'] for j in self.admin_cache.list_jobs()['jobs']]
        self.assertEqual(1, jobs.count(image_id))

    @decorators.idempotent_id('5d0f6c0e-2b6e-4c1b-9a55-0f0c7d3f9a11')
    def test_member_and_reader_are_forbidden(self):
        image_id = self.active_image()['id']
        for client in (self.member_cache, self.reader_cache):
            for call, args in ((client.list_cache, ()), (client.queue_image, (image_id,)),
                               (client.delete_cached_image, (image_id,)),
                               (client.clear_cache, ()), (client.list_jobs, ()),
                               (client.clean_cache, ()), (client.prune_cache, ())):
                self.assertRaises(lib_exc.Forbidden, call, *args)

    @decorators.idempotent_id('5d0f6c0e-2b6e-4c1b-9a55-0f0c7d3f9a12')
    def test_admin_is_allowed(self):
        image_id = self.active_image()['id']
        self.admin_cache.queue_image(image_id)
        self.wait_cached(image_id)
        self.assertIn('jobs', self.admin_cache.list_jobs())
        self.assertIn('total_files_cleaned', self.admin_cache.clean_cache())
        pruned = self.admin_cache.prune_cache()
        self.assertIn('total_files_pruned', pruned)
        self.assertIn('total_bytes_pruned', pruned)
        self.admin_cache.delete_cached_image(image_id)

    @decorators.idempotent_id('5d0f6c0e-2b6e-4c1b-9a55-0f0c7d3f9a21')
    def test_job_state_and_progress_of_a_larger_image(self):
        size = CONF.glance_cache.large_image_size
        image_id = self.active_image(size)['id']
        self.admin_cache.queue_image(image_id)
        seen = []

        def progressed():
            job = self.admin_cache.show_job(image_id)
            self.assertIn(job['state'], ('queued', 'caching', 'cached'))
            self.assertEqual(size, job['size'])
            self.assertLessEqual(job['bytes_done'], size)
            if seen:
                self.assertGreaterEqual(job['bytes_done'], seen[-1])
            seen.append(job['bytes_done'])
            return job['state'] == 'cached'

        self.wait_until(progressed, 'the caching job of %s to finish' % image_id)
        self.assertEqual(size, seen[-1])
        job = self.admin_cache.show_job(image_id)
        self.assertIsNone(job['last_error'])
        self.assertIsNotNone(job['finished_at'])
        self.assertIn(image_id, self.cached_ids(self.admin_cache))

    @decorators.idempotent_id('5d0f6c0e-2b6e-4c1b-9a55-0f0c7d3f9a22')
    def test_delete_image_while_caching(self):
        size = CONF.glance_cache.large_image_size
        image_id = self.active_image(size)['id']
        self.admin_cache.queue_image(image_id)
        self.client.delete_image(image_id)
        self.client.wait_for_resource_deletion(image_id)

        def gone():
            body = self.admin_cache.list_cache()
            return (image_id not in [e['image_id'] for e in body['cached_images']]
                    and image_id not in body['queued_images'])

        self.wait_until(gone, 'deleted image %s to leave the cache' % image_id)
        self.assertRaises(lib_exc.NotFound, self.admin_cache.queue_image, image_id)


class RemoteCacheTest(CacheTestBase):

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.glance_cache.remote_service_type:
            raise cls.skipException('[glance_cache] remote_service_type is not set')

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.remote_cache = _cache_client(cls.os_admin, CONF.glance_cache.remote_service_type)

    @decorators.idempotent_id('5d0f6c0e-2b6e-4c1b-9a55-0f0c7d3f9a31')
    def test_nodes_cache_independently(self):
        image_id = self.active_image()['id']
        self.addCleanup(test_utils.call_and_ignore_notfound_exc,
                        self.remote_cache.delete_cached_image, image_id)
        self.admin_cache.queue_image(image_id)
        self.wait_cached(image_id)
        self.assertNotIn(image_id, self.cached_ids(self.remote_cache))
        self.remote_cache.queue_image(image_id)
        self.wait_cached(image_id, self.remote_cache)
        self.remote_cache.clear_cache()
        self.assertNotIn(image_id, self.cached_ids(self.remote_cache))
        self.assertIn(image_id, self.cached_ids(self.admin_cache))
