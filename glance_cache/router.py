"""The one route table of the service: path -> method -> handler.

Unknown paths are a JSON 404; a known path with another method is a 405 that
lists the allowed methods in ``Allow``. Both are produced here and nowhere else.
"""

import routes
import webob.dec

from glance_cache import errors
from glance_cache.api import common, image_data, images, schemas, versions

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

# Paths served without authentication (version discovery).
PUBLIC_PATHS = frozenset(('/', '/versions'))


class Router:
    """WSGI application that dispatches to the handler of the route and method."""

    def __init__(self, services, declarations=ROUTE_DECLARATIONS):
        self.services = services
        self.declarations = declarations
        self.mapper = routes.Mapper()
        for path in declarations:
            self.mapper.connect(path, _route=path)

    @webob.dec.wsgify
    def __call__(self, req):
        match = self.mapper.match(req.path_info)
        if match is None:
            raise errors.NotFound('No resource at %s' % req.path_info)
        methods = self.declarations[match.pop('_route')]
        handler = methods.get(req.method)
        if handler is None:
            if req.method == 'HEAD' and 'GET' in methods:
                handler = methods['GET']
            else:
                raise errors.MethodNotAllowed(req.method, sorted(methods))
        req.environ[common.SERVICES_KEY] = self.services
        return handler(req, **match)
