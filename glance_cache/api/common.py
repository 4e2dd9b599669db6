"""Helpers every handler uses: services, JSON bodies, ids and timestamps."""

import json
import uuid

import webob

from glance_cache import context, errors

SERVICES_KEY = 'glance_cache.services'


def services(req):
    """The node's Services (config, database, store, policy) for this request."""
    return req.environ[SERVICES_KEY]


def request_context(req):
    return context.from_request(req)


def json_response(body, status=200, headers=None):
    return encoded_json_response(json.dumps(body), status, headers)


def encoded_json_response(text, status=200, headers=None):
    """A response whose body is ``text``, JSON already encoded."""
    resp = webob.Response(status=status, content_type='application/json', charset='utf-8')
    resp.body = text.encode('utf-8')
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def empty_response(status=204):
    resp = webob.Response(status=status)
    del resp.content_type
    return resp


def read_json(req, content_types=('application/json',)):
    """The request's JSON body, after checking its Content-Type."""
    if req.content_type not in content_types:
        raise errors.UnsupportedMediaType(
            'Content-Type must be %s, not %r' % (' or '.join(content_types),
                                                 req.content_type or ''))
    try:
        body = json.loads(req.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest('Malformed JSON in request body: %s' % exc) from None
    _check_text(body)
    return body


def _check_text(value):
    """Refuse strings no database can store: lone surrogates (``"\\ud800"``) and NUL."""
    if isinstance(value, str):
        if '\x00' in value:
            raise errors.BadRequest('Strings in the request body must not contain NUL '
                                    'characters')
        try:
            value.encode('utf-8')
        except UnicodeEncodeError:
            raise errors.BadRequest('Strings in the request body must be valid Unicode: '
                                    'a lone surrogate escape (such as \\ud800) is not '
                                    'a character') from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def require_image_id(value):
    """The canonical form of a UUID image id; 404 for anything that is not one.

    Ids become store keys and cache file names, so nothing but a UUID in its
    canonical 36-character form gets past this point.
    """
    try:
        parsed = uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise errors.ImageNotFound(value if isinstance(value, str) and value.isprintable()
                                   else None) from None
    if str(parsed) != value.lower():
        raise errors.ImageNotFound(value if value.isprintable() else None)
    return str(parsed)


def isotime(value):
    return value.strftime('%Y-%m-%dT%H:%M:%SZ') if value else None
