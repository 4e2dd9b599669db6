"""The exception tree of glance-cache and its one mapping to HTTP.

::

    GlanceCacheError            500 Internal Server Error
     +-- BadRequest             400  malformed or invalid input
     |    +-- InvalidImageState      an operation the image's status forbids
     +-- Unauthorized           401
     +-- Forbidden              403  policy, read-only attribute, protected image
     +-- NotFound               404  unknown resource (never a hint that it exists)
     +-- MethodNotAllowed       405  carries the allowed methods
     +-- NotAcceptable          406
     +-- Conflict               409  the resource's state forbids the change
     +-- RequestEntityTooLarge  413
     +-- UnsupportedMediaType   415
     +-- RangeNotSatisfiable    416
     +-- ServiceUnavailable     503

Handlers raise these; ``FaultWrapper`` in deploy.py turns any of them (and any
unexpected exception, as a 500 without details) into a JSON body of the form
``{"error": {"code": 404, "title": "Not Found", "message": "..."}}``, which is
what python-glanceclient and keystonemiddleware expect.
"""

import json

import webob


class GlanceCacheError(Exception):
    """Base of all errors the API reports; a 500 unless a subclass says otherwise."""

    code = 500
    title = 'Internal Server Error'

    def __init__(self, message=None, headers=None):
        self.message = message or self.title
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def to_response(self):
        """Render this error as a webob Response with a JSON body."""
        body = {'error': {'code': self.code, 'title': self.title, 'message': self.message}}
        resp = webob.Response(status=self.code, content_type='application/json',
                              charset='utf-8')
        resp.body = json.dumps(body).encode('utf-8')
        for name, value in self.headers.items():
            resp.headers[name] = value
        return resp


class BadRequest(GlanceCacheError):
    code = 400
    title = 'Bad Request'


class InvalidImageState(BadRequest):
    """The image is not in a status that allows the operation."""


class Unauthorized(GlanceCacheError):
    code = 401
    title = 'Unauthorized'


class Forbidden(GlanceCacheError):
    code = 403
    title = 'Forbidden'


class NotFound(GlanceCacheError):
    code = 404
    title = 'Not Found'


class ImageNotFound(NotFound):
    def __init__(self, image_id=None):
        super().__init__('No image found with ID %s' % image_id if image_id
                         else 'Image not found')


class MethodNotAllowed(GlanceCacheError):
    code = 405
    title = 'Method Not Allowed'

    def __init__(self, method, allowed):
        super().__init__('Method %s is not allowed here; allowed: %s'
                         % (method, ', '.join(allowed)),
                         headers={'Allow': ', '.join(allowed)})


class NotAcceptable(GlanceCacheError):
    code = 406
    title = 'Not Acceptable'


class Conflict(GlanceCacheError):
    code = 409
    title = 'Conflict'


class RequestEntityTooLarge(GlanceCacheError):
    code = 413
    title = 'Request Entity Too Large'


class UnsupportedMediaType(GlanceCacheError):
    code = 415
    title = 'Unsupported Media Type'


class RangeNotSatisfiable(GlanceCacheError):
    code = 416
    title = 'Requested Range Not Satisfiable'


class ServiceUnavailable(GlanceCacheError):
    code = 503
    title = 'Service Unavailable'


_BY_STATUS = {cls.code: cls for cls in (
    BadRequest, Unauthorized, Forbidden, NotFound, NotAcceptable, Conflict,
    RequestEntityTooLarge, UnsupportedMediaType, RangeNotSatisfiable, ServiceUnavailable)}


def from_status(code, message):
    """The error class for an HTTP status (used for errors raised by libraries)."""
    cls = _BY_STATUS.get(code, GlanceCacheError)
    err = cls(message)
    err.code = code
    return err
