"""The middleware stack around the router, built in code."""

import logging

import webob.dec
import webob.exc
from oslo_middleware import request_id

from glance_cache import context, errors, router

LOG = logging.getLogger(__name__)


class FaultWrapper:
    """Turn every error into the JSON error body clients expect; never leak a trace."""

    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        try:
            return req.get_response(self.app)
        except errors.GlanceCacheError as exc:
            if exc.code >= 500:
                LOG.error('%s %s failed: %s', req.method, req.path, exc)
            return exc.to_response()
        except webob.exc.HTTPException as exc:
            return errors.from_status(exc.code, exc.explanation or exc.title).to_response()
        except Exception:
            LOG.exception('Unexpected error in %s %s', req.method, req.path)
            return errors.GlanceCacheError('The server failed to handle the request; '
                                           'see its log').to_response()


class _PublicPathBypass:
    """Send version discovery past authentication, everything else through it."""

    def __init__(self, authed, public):
        self.authed = authed
        self.public = public

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO') or '/'
        app = self.public if path in router.PUBLIC_PATHS else self.authed
        return app(environ, start_response)


def _auth_middleware(conf, app):
    if conf.api.auth_strategy == 'keystone':
        from keystonemiddleware import auth_token
        return auth_token.AuthProtocol(app, {'oslo_config_config': conf})
    return context.NoAuthMiddleware(app)


def build(conf, services):
    """The WSGI application of one node.

    Inside out: the router; the request context built from identity headers;
    authentication, which sets those headers and so must wrap the context
    (version discovery bypasses it); the fault wrapper outside all of them so
    that errors raised by auth become JSON too; and the request id outermost
    so that every response, errors included, carries x-openstack-request-id.
    """
    app = router.Router(services)
    app = context.ContextMiddleware(app)
    app = _PublicPathBypass(_auth_middleware(conf, app), app)
    app = FaultWrapper(app)
    return request_id.RequestId(app)
