"""A small client for one node's cache API, on the standard library only.

Requests that name target nodes (``nodes=all`` or ``nodes=NAME,...``) go to
the same node, which passes them on to the others and answers an outcome
per target; the cluster view and pins are read and written there as well.

glance-cache-manage's cache commands use it; keeping to ``urllib`` means the
server package gains no HTTP client dependency for an administration tool.
Every failure, an HTTP error answer or no answer at all, is raised as
``CacheClientError`` carrying a message fit for the operator.
"""

import http.client
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request

LOG = logging.getLogger(__name__)

USER_AGENT = 'glance-cache-manage'
DEFAULT_TIMEOUT = 60.0
CLEAR_TARGET_HEADER = 'x-image-cache-clear-target'
CLEAR_TARGETS = ('both', 'cache', 'queue')
NODES_PARAM = 'nodes'
# Long bodies (an HTML error page from a proxy, say) are cut in messages.
MAX_MESSAGE = 500


class CacheClientError(Exception):
    """A request failed; ``status`` is the HTTP status, or None when there was no answer."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        self.status = status


def node_url(url):
    """``url`` without trailing slashes or API version (``/v2``, ``/v2.14``).

    OS_IMAGE_URL often names the versioned endpoint; the cache API lives under
    the node's root.
    """
    url = url.strip().rstrip('/')
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ('http', 'https') or not parsed.netloc:
        raise CacheClientError('not an http(s) URL: %r' % url)
    return re.sub(r'/v\d+(\.\d+)?$', '', url)


def error_message(status, reason, body):
    """The operator's message for an HTTP error answer.

    The node answers ``{"error": {"code", "title", "message"}}``; anything
    else (a proxy's page, plain text) is shown as text.
    """
    text = body.decode('utf-8', 'replace').strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        error = doc.get('error')
        if isinstance(error, dict) and error.get('message'):
            text = str(error['message'])
        elif isinstance(error, str):
            text = error
        elif doc.get('message'):
            text = str(doc['message'])
    text = ' '.join(text.split())[:MAX_MESSAGE]
    return 'HTTP %d %s: %s' % (status, reason, text or '(no details)')


def _read_error_body(exc):
    try:
        return exc.read() or b''
    except (OSError, AttributeError, http.client.HTTPException):
        return b''  # an error without a readable body still has its status
    finally:
        exc.close()


class CacheClient:
    """The cache API of one node at ``url``, authenticated by ``token`` if given."""

    def __init__(self, url, token=None, timeout=DEFAULT_TIMEOUT):
        self.url = node_url(url)
        self.token = token or None
        self.timeout = timeout

    def send(self, method, path, headers=None, params=None):
        """Send one request; ``(status, decoded JSON body or None)``.

        ``params`` become the query string; commas stay as they are, so that
        ``nodes=node1,node2`` reads in logs as it was typed.
        """
        all_headers = {'Accept': 'application/json', 'User-Agent': USER_AGENT}
        if self.token:
            all_headers['X-Auth-Token'] = self.token
        all_headers.update(headers or {})
        url = self.url + path
        if params:
            url += '?' + urllib.parse.urlencode(params, safe=',')
        # A PUT or POST without data goes out with Content-Length: 0 (http.client does it).
        req = urllib.request.Request(url, method=method, headers=all_headers)
        LOG.debug('%s %s', method, url)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            body = _read_error_body(exc)
            LOG.debug('%s %s -> %d %r', method, url, exc.code, body[:MAX_MESSAGE])
            raise CacheClientError(error_message(exc.code, exc.reason, body),
                                   status=exc.code) from None
        except urllib.error.URLError as exc:
            raise CacheClientError('cannot reach %s: %s' % (self.url, exc.reason)) from None
        except (OSError, http.client.HTTPException) as exc:
            # Timeouts and connections dropped mid-answer.
            raise CacheClientError('no answer from %s: %s' % (self.url, exc)) from None
        LOG.debug('%s %s -> %d %r', method, url, status, body[:MAX_MESSAGE])
        if not body:
            return status, None
        try:
            return status, json.loads(body)
        except ValueError:
            raise CacheClientError('%s %s answered %d with a body that is not JSON'
                                   % (method, path, status), status=status) from None

    def request(self, method, path, headers=None, params=None):
        """Send one request; the decoded JSON body, or None when the answer has none."""
        return self.send(method, path, headers=headers, params=params)[1]

    def request_on_nodes(self, method, path, nodes, headers=None):
        """Send a request naming target ``nodes``; the list of per-node outcomes.

        ``nodes`` is ``all`` or comma-separated node names. The node answers
        ``{"nodes": [outcome, ...]}``, 207 when a target did not succeed; see
        ``glance_cache.forward`` for an outcome's keys.
        """
        doc = self.request(method, path, headers=headers, params={NODES_PARAM: nodes})
        outcomes = doc.get('nodes') if isinstance(doc, dict) else None
        if not isinstance(outcomes, list):
            raise CacheClientError('%s %s did not answer per node: is %s a node of a '
                                   'cluster (API with ?nodes=)?' % (method, path, self.url))
        return outcomes

    @staticmethod
    def _item_path(prefix, name):
        # Quote everything so that an odd id or name cannot address another resource.
        return '%s/%s' % (prefix, urllib.parse.quote(name, safe=''))

    def queue(self, image_id, nodes=None):
        """PUT /v2/cache/{id}: ask the node, or the target ``nodes``, to cache the image.

        With ``nodes``, the outcome on each target (see ``request_on_nodes``).
        """
        path = self._item_path('/v2/cache', image_id)
        if nodes:
            return self.request_on_nodes('PUT', path, nodes)
        self.request('PUT', path)
        return None

    def delete(self, image_id, nodes=None):
        """DELETE /v2/cache/{id}: out of the cache and the queue (of ``nodes`` if given)."""
        path = self._item_path('/v2/cache', image_id)
        if nodes:
            return self.request_on_nodes('DELETE', path, nodes)
        self.request('DELETE', path)
        return None

    def clear(self, target='both', nodes=None):
        """DELETE /v2/cache for ``target`` cache, queue or both (of ``nodes`` if given)."""
        if target not in CLEAR_TARGETS:
            raise ValueError('target must be one of %s' % ', '.join(CLEAR_TARGETS))
        # No header means both, which is also what python-glanceclient sends.
        headers = {} if target == 'both' else {CLEAR_TARGET_HEADER: target}
        if nodes:
            return self.request_on_nodes('DELETE', '/v2/cache', nodes, headers=headers)
        self.request('DELETE', '/v2/cache', headers=headers)
        return None

    def list_cache(self):
        """GET /v2/cache: ``{"cached_images": [...], "queued_images": [...]}``."""
        return self.request('GET', '/v2/cache')

    def list_jobs(self):
        """GET /v2/cache/jobs: the node's job records, oldest first."""
        return self.request('GET', '/v2/cache/jobs')['jobs']

    def job(self, image_id):
        """GET /v2/cache/jobs/{id}: the image's job record, or None if it has none."""
        try:
            return self.request('GET', self._item_path('/v2/cache/jobs', image_id))
        except CacheClientError as exc:
            if exc.status == 404:
                return None
            raise

    def job_on_nodes(self, image_id, nodes):
        """GET /v2/cache/jobs/{id}?nodes=...: each target's outcome, its job record as body."""
        return self.request_on_nodes('GET', self._item_path('/v2/cache/jobs', image_id), nodes)

    def holders(self, image_id):
        """GET /v2/cache/nodes/{id}: the URLs of the nodes that are up and hold the image."""
        return self.request('GET', self._item_path('/v2/cache/nodes', image_id))

    def cluster(self):
        """GET /v2/cache/cluster: every registered node with its state and holdings."""
        return self.request('GET', '/v2/cache/cluster')['nodes']

    def forget_node(self, name):
        """DELETE /v2/cache/cluster/{name}: forget a node that is down for good."""
        self.request('DELETE', self._item_path('/v2/cache/cluster', name))

    def pin(self, image_id, nodes=None):
        """PUT /v2/cache/pins/{id}: ``(created, pin)``; the server's default target is all.

        ``created`` is False when every target already had the pin; the pin's
        ``caching`` lists the outcome of asking each target to cache it now.
        """
        params = {NODES_PARAM: nodes} if nodes else None
        status, pin = self.send('PUT', self._item_path('/v2/cache/pins', image_id),
                                params=params)
        return status == 201, pin

    def unpin(self, image_id, nodes=None):
        """DELETE /v2/cache/pins/{id}: every pin of the image, or those to ``nodes``."""
        params = {NODES_PARAM: nodes} if nodes else None
        self.request('DELETE', self._item_path('/v2/cache/pins', image_id), params=params)

    def list_pins(self):
        """GET /v2/cache/pins: every pinned image with the nodes it is pinned to."""
        return self.request('GET', '/v2/cache/pins')['pins']

    def prune(self):
        """POST /v2/cache/prune: ``(files, bytes)`` evicted."""
        result = self.request('POST', '/v2/cache/prune') or {}
        return result.get('total_files_pruned', 0), result.get('total_bytes_pruned', 0)

    def clean(self):
        """POST /v2/cache/clean: ``(files, bytes)`` of stalled and invalid files removed."""
        result = self.request('POST', '/v2/cache/clean') or {}
        return result.get('total_files_cleaned', 0), result.get('total_bytes_cleaned', 0)
