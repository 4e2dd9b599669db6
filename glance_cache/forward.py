"""Passing a cache request on to chosen nodes of the cluster (fan-out).

A cache request that names target nodes (``?nodes=all`` or
``?nodes=NAME,NAME``) is served by the receiving node as follows: its own
part, if it is a target, runs in-process as a plain request would; every
other target that is up gets the same request, without ``nodes``, at its
direct URL with the caller's own credentials, all at once. Each target
authorizes the request itself, exactly as if the caller had come directly.
A target that is down (no heartbeat for ``[cluster] node_timeout``) is not
contacted; one that does not answer within ``[cluster] forward_timeout`` or
answers an error is reported as such. No target can hold up the others, and
the answer comes within ``forward_timeout`` whatever the targets do.

Passing requests on is itself a privilege (policy ``cache_forward``, admins
by default), checked before anything else: it reveals the cluster's nodes
and makes every one of them work. The targets then authorize the request
as if the caller had come to them directly. Credentials go only to the
targets' own URLs: environment proxies and redirects are not followed.

The answer lists one outcome per target::

    {"nodes": [{"node": "n1", "url": "http://...", "state": "up", "status": 202,
                "ok": true, "message": null}, ...]}
"""

import concurrent.futures
import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request

from glance_cache import cluster, errors
from glance_cache.api import common
from glance_cache.db import api as db_api

LOG = logging.getLogger(__name__)

ALL = 'all'
NODES_PARAM = 'nodes'
# Credentials and the one cache header, passed on as the caller sent them.
# The identity headers matter to peers in noauth mode; keystonemiddleware
# discards them and validates the token.
PASSED_HEADERS = ('X-Auth-Token', 'X-Service-Token', 'X-User-Id', 'X-Project-Id', 'X-Roles',
                  'X-Image-Cache-Clear-Target')
FORWARDED_BY = 'X-Glance-Cache-Forwarded-By'
MAX_MESSAGE = 500


def requested_targets(req):
    """The ``nodes`` parameter of a request, or None when it names no target."""
    values = req.GET.getall(NODES_PARAM)
    if not values:
        return None
    names = [n.strip() for value in values for n in value.split(',') if n.strip()]
    if not names:
        raise errors.BadRequest('nodes must be "all" or a comma-separated list of node '
                                'names')
    return names


def resolve_targets(svc, names):
    """The node rows ``names`` designate (``all``: every registered node)."""
    nodes = svc.db.node_list()
    if ALL in names:
        if len(names) > 1:
            raise errors.BadRequest('nodes=all cannot be combined with node names')
        if not any(n['name'] == svc.node for n in nodes):
            LOG.warning('Node %s is not registered yet; passing the request on to the '
                        'others only', svc.node)
        return nodes
    by_name = {n['name']: n for n in nodes}
    unknown = [n for n in dict.fromkeys(names) if n not in by_name]
    if unknown:
        raise errors.BadRequest('Unknown node(s): %s' % ', '.join(unknown))
    return [by_name[n] for n in dict.fromkeys(names)]


def fan_out(req, targets, local, path=None):
    """Run a request on each target node; the list of outcomes, in target order.

    ``local()`` serves this node's part in-process and returns a webob
    response (or raises an API error). Other nodes get the request itself,
    or a request of the same method to ``path`` when given.
    """
    svc = common.services(req)
    timeout = svc.conf.cluster.forward_timeout
    now = None
    outcomes = [None] * len(targets)
    remote = []
    for i, node in enumerate(targets):
        if node['name'] == svc.node:
            outcomes[i] = _local_outcome(node, local)
            continue
        now = now or db_api.utcnow()
        state = cluster.node_state(node, svc.conf.cluster.node_timeout, now)
        if state == cluster.DOWN:
            outcomes[i] = _outcome(node, cluster.DOWN, None, False,
                                   'node is down: no heartbeat for %.0f s; not contacted'
                                   % cluster.heartbeat_age(node, now))
        else:
            remote.append(i)
    if remote:
        request = _forwarded_request(req, svc.node, path)
        pool = concurrent.futures.ThreadPoolExecutor(len(remote))
        try:
            futures = {i: pool.submit(_send, targets[i], request, timeout) for i in remote}
            concurrent.futures.wait(futures.values(), timeout=timeout + 1)
            for i, future in futures.items():
                outcomes[i] = _result(targets[i], future, timeout)
        finally:
            # A target still trickling its answer is left to its socket timeout.
            pool.shutdown(wait=False, cancel_futures=True)
    return outcomes


def _result(node, future, timeout):
    if not future.done():
        return _outcome(node, cluster.UP, None, False,
                        'no answer from %s within %.0f s' % (node['url'], timeout))
    try:
        return future.result()
    except Exception as exc:  # _send reports failures itself; this is a bug's guard
        LOG.exception('Passing a request on to node %s failed', node['name'])
        return _outcome(node, cluster.UP, None, False, 'failed: %s' % exc)


def overall_status(outcomes, success):
    """``success`` when every target succeeded, else 207 Multi-Status."""
    return success if all(o['ok'] for o in outcomes) else 207


def _outcome(node, state, status, ok, message, body=None):
    outcome = {'node': node['name'], 'url': node['url'], 'state': state, 'status': status,
               'ok': ok, 'message': message}
    if body is not None:
        outcome['body'] = body
    return outcome


def _local_outcome(node, local):
    try:
        resp = local()
    except errors.GlanceCacheError as exc:
        return _outcome(node, cluster.UP, exc.code, False, exc.message)
    body = json.loads(resp.body) if resp.body else None
    return _outcome(node, cluster.UP, resp.status_int, True, None, body)


def _forwarded_request(req, node_name, path=None):
    """(method, path and query without ``nodes``, headers) of the request to pass on."""
    query = [(k, v) for k, v in req.GET.items() if k != NODES_PARAM]
    path = urllib.parse.quote(path or req.path_info)
    if query:
        path += '?' + urllib.parse.urlencode(query)
    headers = {name: req.headers[name] for name in PASSED_HEADERS if name in req.headers}
    headers['Accept'] = 'application/json'
    headers[FORWARDED_BY] = node_name
    request_id = req.environ.get('openstack.request_id')
    if request_id:
        # The target logs it as the global request id: one id across the nodes.
        headers['X-OpenStack-Request-ID'] = request_id
    return req.method, path, headers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Answer a redirect as the error it is here: credentials never follow one."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# No proxy from the environment, no redirects: the caller's token goes to the
# target's own URL and nowhere else.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _send(node, request, timeout):
    method, path, headers = request
    url = node['url'].rstrip('/') + path
    http_req = urllib.request.Request(url, method=method, headers=headers,
                                      data=b'' if method in ('PUT', 'POST') else None)
    try:
        with _OPENER.open(http_req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        try:
            raw = exc.read() or b''
        except (OSError, http.client.HTTPException):
            raw = b''
        finally:
            exc.close()
        return _outcome(node, cluster.UP, exc.code, False, _error_message(raw, exc.reason))
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        # Refused, reset, timed out, or an answer that is no HTTP (a truncated
        # body, a bad status line).
        reason = getattr(exc, 'reason', None) or '%s: %s' % (type(exc).__name__, exc)
        LOG.warning('%s %s on node %s failed: %s', method, path, node['name'], reason)
        return _outcome(node, cluster.UP, None, False,
                        'no answer from %s: %s' % (node['url'], reason))
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        return _outcome(node, cluster.UP, status, False, 'the answer was not JSON')
    return _outcome(node, cluster.UP, status, True, None, body)


def _error_message(raw, reason):
    try:
        error = json.loads(raw)['error']
        return str(error['message'])[:MAX_MESSAGE]
    except (ValueError, KeyError, TypeError):
        text = ' '.join(raw.decode('utf-8', 'replace').split())[:MAX_MESSAGE]
        return text or str(reason)
