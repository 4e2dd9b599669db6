"""A REST client for glance-cache's node-local cache API, jobs, clean and prune included."""

from oslo_serialization import jsonutils
from tempest.lib.common import rest_client


class CacheClient(rest_client.RestClient):
    """``/v2/cache`` of one node (the catalog service given as ``service``)."""

    api_version = 'v2'

    def _json(self, resp, body, expected):
        self.expected_success(expected, resp.status)
        return rest_client.ResponseBody(resp, jsonutils.loads(body) if body else {})

    def list_cache(self):
        resp, body = self.get('cache')
        return self._json(resp, body, 200)

    def queue_image(self, image_id):
        resp, body = self.put('cache/%s' % image_id, body=None)
        return self._json(resp, None, 202)

    def delete_cached_image(self, image_id):
        resp, _body = self.delete('cache/%s' % image_id)
        return self._json(resp, None, 204)

    def clear_cache(self, target=None):
        headers = {'x-image-cache-clear-target': target} if target is not None else {}
        resp, _body = self.delete('cache', headers=headers)
        return self._json(resp, None, 204)

    def list_jobs(self, state=None):
        url = 'cache/jobs' if state is None else 'cache/jobs?state=%s' % state
        resp, body = self.get(url)
        return self._json(resp, body, 200)

    def show_job(self, image_id):
        resp, body = self.get('cache/jobs/%s' % image_id)
        return self._json(resp, body, 200)

    def clean_cache(self):
        resp, body = self.post('cache/clean', body=None)
        return self._json(resp, body, 200)

    def prune_cache(self):
        resp, body = self.post('cache/prune', body=None)
        return self._json(resp, body, 200)
