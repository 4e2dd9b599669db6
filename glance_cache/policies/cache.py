"""Rules for the node-local cache API (admin-only by default)."""

from oslo_policy import policy

CACHE = '/v2/cache'
CACHE_IMAGE = '/v2/cache/{image_id}'

rules = [
    policy.DocumentedRuleDefault(
        name='cache_image',
        check_str='rule:admin_required',
        description='Queue an image for caching on this node. The target is the image '
                    '(owner, also as project_id, visibility and every other attribute), so '
                    'a rule such as "role:member and project_id:%(owner)s" lets owners '
                    'cache their own images.',
        operations=[{'path': CACHE_IMAGE, 'method': 'PUT'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='cache_list',
        check_str='rule:admin_required',
        description='List the cached and queued images and the caching jobs of this node, '
                    'the nodes that hold an image, every node of the cluster and the pins.',
        operations=[{'path': CACHE, 'method': 'GET'},
                    {'path': '/v2/cache/jobs', 'method': 'GET'},
                    {'path': '/v2/cache/jobs/{image_id}', 'method': 'GET'},
                    {'path': '/v2/cache/nodes/{image_id}', 'method': 'GET'},
                    {'path': '/v2/cache/cluster', 'method': 'GET'},
                    {'path': '/v2/cache/pins', 'method': 'GET'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='cache_delete',
        check_str='rule:admin_required',
        description='Remove an image, or every image, from this node\'s cache and queue.',
        operations=[{'path': CACHE_IMAGE, 'method': 'DELETE'},
                    {'path': CACHE, 'method': 'DELETE'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='manage_image_cache',
        check_str='rule:admin_required',
        description='Clean (remove stalled and invalid files) and prune (evict to the low '
                    'watermark) this node\'s cache, and forget a node that is down.',
        operations=[{'path': '/v2/cache/clean', 'method': 'POST'},
                    {'path': '/v2/cache/prune', 'method': 'POST'},
                    {'path': '/v2/cache/cluster/{node_name}', 'method': 'DELETE'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='cache_forward',
        check_str='rule:admin_required',
        description='Pass a cache request on to other nodes of the cluster (the nodes '
                    'query parameter). Checked on the receiving node before anything else; '
                    'each target node then checks the request\'s own rule (cache_image, '
                    'cache_delete, cache_list) as if the caller had come directly.',
        operations=[{'path': CACHE_IMAGE + '?nodes=', 'method': 'PUT'},
                    {'path': CACHE_IMAGE + '?nodes=', 'method': 'DELETE'},
                    {'path': CACHE + '?nodes=', 'method': 'DELETE'},
                    {'path': '/v2/cache/jobs/{image_id}?nodes=', 'method': 'GET'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='cache_pin',
        check_str='rule:admin_required',
        description='Pin an image to all nodes or named ones (kept cached, never evicted), '
                    'or unpin it. The target is the image, as for cache_image.',
        operations=[{'path': '/v2/cache/pins/{image_id}', 'method': 'PUT'},
                    {'path': '/v2/cache/pins/{image_id}', 'method': 'DELETE'}],
        scope_types=['project']),
]


def list_rules():
    return rules
