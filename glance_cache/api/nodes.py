"""The cluster as any node sees it: who holds an image, every node, and pins.

Everything here is read from, or written to, the shared database; no request
in this module waits for another node, except pinning, which also asks each
target to cache the image at once (as ``PUT /v2/cache/{id}?nodes=...``).
"""

from glance_cache import cluster, errors, forward
from glance_cache.api import cache as cache_api
from glance_cache.api import common
from glance_cache.db import api as db_api


def _visible_image(req, image_id):
    """The image and its policy target; 404 if the caller may not see it."""
    svc = common.services(req)
    image = svc.db.image_get(image_id)
    target = svc.target(image)
    if not svc.policy.check(common.request_context(req), 'get_image', target):
        raise errors.ImageNotFound(image_id)
    return svc, image, target


def image_nodes(req, image_id):
    """GET /v2/cache/nodes/{image_id}: the URLs of the nodes that are up and hold it."""
    image_id = common.require_image_id(image_id)
    svc, _image, target = _visible_image(req, image_id)
    svc.policy.authorize(common.request_context(req), 'cache_list', target)
    timeout = svc.conf.cluster.node_timeout
    now = db_api.utcnow()
    return common.json_response([node['url'] for node in svc.db.image_holders(image_id)
                                 if cluster.node_state(node, timeout, now) == cluster.UP])


def cluster_view(req):
    """GET /v2/cache/cluster: every node with its state, holdings, queue and pins."""
    svc = cache_api.authorize(req, 'cache_list')
    timeout = svc.conf.cluster.node_timeout
    now = db_api.utcnow()
    return common.json_response({'nodes': [cluster.describe_node(node, timeout, now)
                                           for node in svc.db.node_list()]})


def forget_node(req, node_name):
    """DELETE /v2/cache/cluster/{node_name}: forget a node that is down for good."""
    svc = cache_api.authorize(req, 'manage_image_cache')
    node = svc.db.node_get(node_name)
    if node is None:
        raise errors.NotFound('No node named %s' % node_name)
    if cluster.node_state(node, svc.conf.cluster.node_timeout) == cluster.UP:
        raise errors.Conflict('Node %s is up (last heartbeat %.0f s ago): stop it first'
                              % (node_name, cluster.heartbeat_age(node)))
    svc.db.node_forget(node_name)
    return common.empty_response()


def _pin_views(pins):
    by_image = {}
    for pin in pins:
        view = by_image.setdefault(pin['image_id'], {
            'image_id': pin['image_id'], 'size': pin['size'], 'nodes': [],
            'created_at': cluster.epoch(pin['created_at']), 'created_by': pin['created_by']})
        view['nodes'].append(forward.ALL if pin['node_name'] == db_api.ALL_NODES
                             else pin['node_name'])
    return list(by_image.values())


def list_pins(req):
    """GET /v2/cache/pins: every pinned image and the nodes it is pinned to."""
    svc = cache_api.authorize(req, 'cache_list')
    return common.json_response({'pins': _pin_views(svc.db.pin_list())})


def pin_image(req, image_id):
    """PUT /v2/cache/pins/{image_id}[?nodes=all|NAME,...]: pin, and cache it now.

    Refused (409) when the image would take a target past its pin budget.
    201 for a new pin, 200 when every target already had it.
    """
    image_id = common.require_image_id(image_id)
    svc, image, target = _visible_image(req, image_id)
    ctx = common.request_context(req)
    svc.policy.authorize(ctx, 'cache_pin', target)
    if image['status'] != 'active':
        raise errors.InvalidImageState(
            'Only active images can be pinned; image %s is %s' % (image_id, image['status']))
    names = forward.requested_targets(req) or [forward.ALL]
    targets = forward.resolve_targets(svc, names)
    existing = {p['node_name'] for p in svc.db.pin_list(image_id)}
    size = image['size'] or 0
    over = ['%s (%d of %d bytes pinned)' % (n['name'], n['pinned_bytes'], n['pinned_max_size'])
            for n in targets
            if not existing & {db_api.ALL_NODES, n['name']}
            and n['pinned_bytes'] + size > n['pinned_max_size']]
    if over:
        raise errors.Conflict(
            'Pinning image %s (%d bytes) would pass the pin budget (pinned_max_size) of '
            'node(s) %s: unpin other images or raise pinned_max_size'
            % (image_id, size, ', '.join(over)))
    pin_names = ([db_api.ALL_NODES] if forward.ALL in names
                 else [n['name'] for n in targets])
    added = svc.db.pin_add(image_id, pin_names, created_by=ctx.user_id)
    svc.member.pins_changed()
    outcomes = forward.fan_out(req, targets, lambda: cache_api.queue_here(req, image_id),
                               path='/v2/cache/%s' % image_id)
    view = _pin_views(svc.db.pin_list(image_id))[0]
    view['caching'] = outcomes
    return common.json_response(view, status=201 if added else 200)


def unpin_image(req, image_id):
    """DELETE /v2/cache/pins/{image_id}[?nodes=all|NAME,...]: 204; entries stay, to LRU.

    Without ``nodes`` every pin of the image goes; ``nodes=all`` removes the
    pin to all nodes, and names remove pins to those nodes.
    """
    image_id = common.require_image_id(image_id)
    svc = common.services(req)
    try:
        target = svc.target(svc.db.image_get(image_id))
    except errors.NotFound:
        target = None
    cache_api.authorize(req, 'cache_pin', target)
    names = forward.requested_targets(req)
    if names is not None:
        if forward.ALL not in names:
            forward.resolve_targets(svc, names)  # 400 for a name that is no node
        names = [db_api.ALL_NODES if n == forward.ALL else n for n in names]
    if not svc.db.pin_remove(image_id, names):
        raise errors.NotFound('Image %s is not pinned%s' % (
            image_id, '' if names is None else ' to %s' % ', '.join(
                forward.ALL if n == db_api.ALL_NODES else n for n in names)))
    svc.member.pins_changed()
    return common.empty_response()
