"""The one route table of the service: path -> method -> handler.

Unknown paths are a JSON 404; a known path with another method is a 405 that
lists the allowed methods in ``Allow``. Both are produced here and nowhere else.
"""

import routes
import webob.dec

from glance_cache import errors
from glance_cache.api import cache, common, image_data, images, nodes, schemas, versions

ROUTE_DECLARATIONS = {
    '/': {'GET': versions.multiple_choices},
    '/versions': {'GET': versions.list_versions},
    '/v2/schemas/image': {'GET': schemas.image},
    '/v2/schemas/images': {'GET': schemas.images},
    '/v2/images': {'GET': images.index, 'POST': images.create},
    '/v2/images/{image_id}': {'GET': images.show, 'PATCH': images.update,
                              'DELETE': images.delete},
    '/v2/images/{image_id}/file': {'GET': image_data.download, 'PUT': image_data.upload},
}

# The cache API, present only when [cache] enabled is true.
CACHE_ROUTE_DECLARATIONS = {
    '/v2/cache': {'GET': cache.list_cache, 'DELETE': cache.clear},
    '/v2/cache/jobs': {'GET': cache.list_jobs},
    '/v2/cache/jobs/{image_id}': {'GET': cache.show_job},
    '/v2/cache/nodes/{image_id}': {'GET': nodes.image_nodes},
    '/v2/cache/cluster': {'GET': nodes.cluster_view},
    '/v2/cache/cluster/{node_name}': {'DELETE': nodes.forget_node},
    '/v2/cache/pins': {'GET': nodes.list_pins},
    '/v2/cache/pins/{image_id}': {'PUT': nodes.pin_image, 'DELETE': nodes.unpin_image},
    '/v2/cache/clean': {'POST': cache.clean},
    '/v2/cache/prune': {'POST': cache.prune},
    '/v2/cache/{image_id}': {'PUT': cache.queue_image, 'DELETE': cache.delete_cached_image},
}

# Paths served without authentication (version discovery).
PUBLIC_PATHS = frozenset(('/', '/versions'))


def _decoded_path(req):
    """The request's path, after checking that it and the query string are text.

    A path that is no UTF-8 text names nothing (404); such a query string
    says nothing (400). webob decodes both as UTF-8 when a handler reads
    them. NUL characters are refused too: PostgreSQL cannot store them.
    """
    try:
        path = req.path_info
    except UnicodeDecodeError:
        raise errors.NotFound('No resource at this path: it is not valid UTF-8') from None
    if '\x00' in path:
        raise errors.NotFound('No resource at this path: it holds a NUL character')
    try:
        params = req.GET.items()
    except UnicodeDecodeError:
        raise errors.BadRequest('The query string is not valid UTF-8') from None
    for name, value in params:
        if '\x00' in name or '\x00' in value:
            raise errors.BadRequest('Query parameters must not contain NUL characters')
    return path


class Router:
    """WSGI application that dispatches to the handler of the route and method."""

    def __init__(self, services, declarations=None):
        self.services = services
        if declarations is None:
            declarations = dict(ROUTE_DECLARATIONS)
            if services.cache is not None:
                declarations.update(CACHE_ROUTE_DECLARATIONS)
        self.declarations = declarations
        self.mapper = routes.Mapper()
        for path in declarations:
            self.mapper.connect(path, _route=path)

    @webob.dec.wsgify
    def __call__(self, req):
        path = _decoded_path(req)
        match = self.mapper.match(path)
        if match is None:
            raise errors.NotFound('No resource at %s' % path)
        methods = self.declarations[match.pop('_route')]
        handler = methods.get(req.method)
        if handler is None:
            if req.method == 'HEAD' and 'GET' in methods:
                handler = methods['GET']
            else:
                raise errors.MethodNotAllowed(req.method, sorted(methods))
        req.environ[common.SERVICES_KEY] = self.services
        return handler(req, **match)
