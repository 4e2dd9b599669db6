"""The version document: GET / (300) and GET /versions (200)."""

from glance_cache.api import common

# (id, status) newest first. The cache API (v2.14, and v2.18 for clean and
# prune) is listed only when the cache is enabled: python-glanceclient asks
# for these ids before every cache call.
CACHE_API_VERSIONS = (
    ('v2.18', 'CURRENT'),
    ('v2.17', 'SUPPORTED'),
    ('v2.16', 'SUPPORTED'),
    ('v2.15', 'SUPPORTED'),
    ('v2.14', 'SUPPORTED'),
)

IMAGE_API_VERSIONS = (
    ('v2.7', 'CURRENT'),
    ('v2.6', 'SUPPORTED'),
    ('v2.5', 'SUPPORTED'),
    ('v2.4', 'SUPPORTED'),
    ('v2.3', 'SUPPORTED'),
    ('v2.2', 'SUPPORTED'),
    ('v2.1', 'SUPPORTED'),
    ('v2.0', 'SUPPORTED'),
)


def _versions(req):
    if common.services(req).cache is None:
        return IMAGE_API_VERSIONS
    return CACHE_API_VERSIONS + tuple((vid, 'SUPPORTED') for vid, _ in IMAGE_API_VERSIONS)


def _document(req):
    href = req.host_url.rstrip('/') + '/v2/'
    return {'versions': [{'id': vid, 'status': status,
                          'links': [{'rel': 'self', 'href': href}]}
                         for vid, status in _versions(req)]}


def list_versions(req):
    """GET /versions: 200 with every API version this service implements."""
    return common.json_response(_document(req))


def multiple_choices(req):
    """GET /: 300 with the same document, as Glance answers."""
    return common.json_response(_document(req), status=300)
