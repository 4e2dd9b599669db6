"""The request context: who is calling, built once per request from auth headers.

In ``keystone`` mode keystonemiddleware's auth_token has validated the token and
set ``X-Roles``, ``X-Project-Id`` and ``X-User-Id``; in ``noauth`` mode
``NoAuthMiddleware`` fills them in from what the client sent. Either way
``ContextMiddleware`` builds one ``RequestContext`` and stores it in the WSGI
environ under ``glance_cache.context``.
"""

import webob.dec
from oslo_context import context

from glance_cache import errors

ENVIRON_KEY = 'glance_cache.context'

# Keystone's default role implications (admin > member > reader), applied in
# noauth mode so that a client sending only "admin" is treated as Keystone would.
_IMPLIED_ROLES = {'admin': ('member', 'reader'), 'member': ('reader',)}


class RequestContext(context.RequestContext):
    """oslo.context's RequestContext with the image service's notion of admin.

    Its logging values are made once and kept until an attribute changes:
    oslo.log asks for them twice for every line logged while the request
    is served, and making them walks every attribute.
    """

    _LOGGING_VALUES = '_glance_cache_logging_values'

    def __setattr__(self, name, value):
        self.__dict__.pop(self._LOGGING_VALUES, None)
        super().__setattr__(name, value)

    def get_logging_values(self):
        values = self.__dict__.get(self._LOGGING_VALUES)
        if values is None:
            values = super().get_logging_values()
            self.__dict__[self._LOGGING_VALUES] = values
        # A copy: a caller may change what it was given.
        return dict(values)

    @property
    def is_admin_role(self):
        return 'admin' in self.roles

    @property
    def policy_credentials(self):
        return self.to_policy_values()


def expand_roles(roles):
    """Roles plus the roles they imply, in a stable order without duplicates."""
    result = []
    for role in roles:
        for r in (role, *_IMPLIED_ROLES.get(role, ())):
            if r not in result:
                result.append(r)
    return result


class NoAuthMiddleware:
    """Trust identity headers; derive them from the token where they are absent.

    Meant for a node on loopback and for tests. Without ``X-Roles`` the token
    ``admin`` stands for an admin and any other token for a member; without
    ``X-Project-Id`` (``X-User-Id``) the token itself names the project (user).
    A request with neither a token nor ``X-Roles`` is 401.
    """

    def __init__(self, app):
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req):
        token = req.headers.get('X-Auth-Token')
        roles_header = req.headers.get('X-Roles')
        if not token and roles_header is None:
            raise errors.Unauthorized('Authentication required: send X-Auth-Token')
        if roles_header is None:
            roles = ['admin'] if token == 'admin' else ['member']
        else:
            roles = [r.strip() for r in roles_header.split(',') if r.strip()]
        req.headers['X-Roles'] = ','.join(expand_roles(roles))
        req.headers.setdefault('X-Project-Id', token or 'noauth')
        req.headers.setdefault('X-User-Id', token or 'noauth')
        req.headers['X-Identity-Status'] = 'Confirmed'
        return req.get_response(self.app)


class ContextMiddleware:
    """Build the RequestContext of every request from the identity headers."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        environ[ENVIRON_KEY] = RequestContext.from_environ(environ)
        return self.app(environ, start_response)


def from_request(req):
    """The RequestContext of a webob request; an anonymous one where none was built."""
    ctx = req.environ.get(ENVIRON_KEY)
    if ctx is None:
        ctx = RequestContext(roles=[])
    return ctx
