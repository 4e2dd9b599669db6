"""The middleware stack around the router, built in code."""

import contextlib
import logging
import time

import webob.dec
import webob.exc
from oslo_middleware import healthcheck, request_id

from glance_cache import context, errors, router
from glance_cache.api import metrics as metrics_api

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
                LOG.error('%s %s failed: %s', req.method, _raw_path(req), exc)
            return exc.to_response()
        except webob.exc.HTTPException as exc:
            return errors.from_status(exc.code, exc.explanation or exc.title).to_response()
        except Exception:
            LOG.exception('Unexpected error in %s %s', req.method, _raw_path(req))
            return errors.GlanceCacheError('The server failed to handle the request; '
                                           'see its log').to_response()


def _raw_path(req):
    # req.path decodes the path as UTF-8, which a bad request may not be.
    return req.environ.get('PATH_INFO', '').encode('latin-1').decode('utf-8', 'replace')


class RequestLog:
    """Log one line per request: method, path, status, bytes sent and duration.

    It sits inside RequestId so that oslo.log's context (request id, user,
    project) is on the line.
    """

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started = time.monotonic()
        status = []

        def record_status(status_line, headers, exc_info=None):
            status.append(status_line.split(' ', 1)[0])
            return start_response(status_line, headers, exc_info)

        body = self.app(environ, record_status)
        file_wrapper = environ.get('wsgi.file_wrapper')
        if isinstance(file_wrapper, type) and isinstance(body, file_wrapper):
            # Leave the server's sendfile path alone: log now, not as bytes go out.
            _log_request(environ, status, -1, started)
            return body
        return _LoggedBody(body, environ, status, started)


# Probed every few seconds by load balancers and Prometheus: logged at debug.
QUIET_PATHS = frozenset(('/healthcheck', '/metrics'))


def _log_request(environ, status, sent, started):
    path = environ.get('PATH_INFO', '')
    level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
    if environ.get('QUERY_STRING'):
        path += '?' + environ['QUERY_STRING']
    LOG.log(level, '%s "%s %s" status: %s len: %s time: %.4f',
             environ.get('REMOTE_ADDR', '-'), environ.get('REQUEST_METHOD'), path,
             (status or ['-'])[0], sent if sent >= 0 else '-', time.monotonic() - started)


class _LoggedBody:
    """The response body, counted as it is sent; the line is logged on close."""

    def __init__(self, body, environ, status, started):
        self._body = body
        self._environ = environ
        self._status = status
        self._started = started
        self._sent = 0

    def __iter__(self):
        for chunk in self._body:
            self._sent += len(chunk)
            yield chunk

    def close(self):
        try:
            if hasattr(self._body, 'close'):
                self._body.close()
        finally:
            _log_request(self._environ, self._status, self._sent, self._started)


class _PathDispatch:
    """Send a few paths to their own applications, everything else to ``default``."""

    def __init__(self, default, paths):
        self.default = default
        self.paths = paths

    def __call__(self, environ, start_response):
        path = environ.get('PATH_INFO') or '/'
        return self.paths.get(path, self.default)(environ, start_response)


class _ReadOnly:
    """Let GET and HEAD through to ``app``; any other method is a 405."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get('REQUEST_METHOD') not in ('GET', 'HEAD'):
            raise errors.MethodNotAllowed(environ.get('REQUEST_METHOD'), ['GET', 'HEAD'])
        return self.app(environ, start_response)


@contextlib.contextmanager
def _without_oslo_cache_options():
    """Keep keystonemiddleware from registering oslo.cache's [cache] options.

    auth_token registers them on cfg.CONF when imported (and on its config object when
    built), but our own [cache] group already has an ``enabled`` option of another
    meaning, so oslo.config raises DuplicateOptError. auth_token never reads them: its
    token cache is configured by [keystone_authtoken] memcached_servers and friends.
    """
    import oslo_cache
    original = oslo_cache.configure
    oslo_cache.configure = lambda conf: None
    try:
        yield
    finally:
        oslo_cache.configure = original


def _auth_middleware(conf, app):
    if conf.api.auth_strategy == 'keystone':
        with _without_oslo_cache_options():
            from keystonemiddleware import auth_token
            return auth_token.AuthProtocol(app, {'oslo_config_config': conf})
    return context.NoAuthMiddleware(app)


def build(conf, services):
    """The WSGI application of one node.

    Inside out: the router; the request context built from identity headers;
    authentication, which sets those headers and so must wrap the context
    (version discovery bypasses it); the fault wrapper outside all of them so
    that errors raised by auth become JSON too; and the request id outermost
    so that every response, errors included, carries x-openstack-request-id,
    with the request log just inside it so its lines carry that id.
    """
    app = router.Router(services)
    app = context.ContextMiddleware(app)
    authed = _auth_middleware(conf, app)
    # Unauthenticated: version discovery, the health check and the metrics.
    paths = {path: app for path in router.PUBLIC_PATHS}
    paths['/healthcheck'] = _ReadOnly(healthcheck.Healthcheck(authed, conf))
    if services.exporter is not None and conf.metrics.bind_port is None:
        paths['/metrics'] = _ReadOnly(metrics_api.application(services.exporter))
    app = _PathDispatch(authed, paths)
    app = FaultWrapper(app)
    app = RequestLog(app)
    return request_id.RequestId(app)
