"""Checks of live HTTP exchanges against api-ref/openapi.yaml.

``OpenAPIDocument.problems(...)`` looks up the operation a request hit and
says what in the answer the document does not describe: an undeclared status
code, a missing or undeclared Content-Type, a missing required header, or a
body that fails the declared schema (JSON Schema 2020-12, ``$ref``\\ s
resolved against the whole document). It also checks the request's JSON body
and query parameter names, so a test proves its own requests are described.

Two rules the document cannot say in OpenAPI terms:

- a response marked ``x-body-optional: true`` may come with no body and no
  Content-Type (``PUT /v2/cache/{id}`` answers 202 with a body only when it
  names target nodes);
- a known path with an undeclared method must answer
  ``components/responses/MethodNotAllowed`` (405 with ``Allow``), and an
  unknown path ``components/responses/NotFound``.
"""

import json
import os
import re
import urllib.parse

import jsonschema
import referencing
import referencing.jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC_PATH = os.path.join(ROOT, 'api-ref', 'openapi.yaml')
BASE_URI = 'urn:glance-cache:openapi'
METHODS = ('get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace')


def load(path=SPEC_PATH):
    with open(path) as f:
        return yaml.safe_load(f)


def _escape(token):
    return token.replace('~', '~0').replace('/', '~1')


def _media_type(value):
    return (value or '').split(';', 1)[0].strip().lower()


def _is_json(media_type):
    return media_type == 'application/json' or media_type.endswith('+json')


class Exchange:
    """One request and its answer, whichever HTTP client produced them."""

    def __init__(self, method, url, status, headers, body, request_headers=None,
                 request_body=None):
        self.method = method.upper()
        parsed = urllib.parse.urlsplit(url)
        self.path = urllib.parse.unquote(parsed.path) or '/'
        self.query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        self.status = status
        # Lower-cased names; the first value of a repeated header.
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body or b''
        self.request_headers = {k.lower(): v for k, v in (request_headers or {}).items()}
        self.request_body = request_body

    @classmethod
    def from_requests(cls, resp):
        """An Exchange from a ``requests.Response``."""
        req = resp.request
        body = req.body
        if body is not None and not isinstance(body, (bytes, str)):
            body = None  # a generator (chunked upload): not inspected
        return cls(req.method, req.url, resp.status_code, dict(resp.headers), resp.content,
                   dict(req.headers), body)

    @classmethod
    def from_schemathesis(cls, response):
        """An Exchange from a ``schemathesis.Response``."""
        req = response.request
        headers = {k: v[0] for k, v in response.headers.items() if v}
        body = req.body if isinstance(req.body, (bytes, str)) else None
        return cls(req.method, req.url, response.status_code, headers, response.content,
                   dict(req.headers), body)

    def __str__(self):
        query = urllib.parse.urlencode(self.query, doseq=True)
        return '%s %s%s -> %s %s %r' % (
            self.method, self.path, '?' + query if query else '', self.status,
            self.headers.get('content-type', '(no Content-Type)'), self.body[:300])


class OpenAPIDocument:
    """api-ref/openapi.yaml, ready to check exchanges against."""

    def __init__(self, path=SPEC_PATH, document=None):
        self.doc = document if document is not None else load(path)
        resource = referencing.jsonschema.DRAFT202012.create_resource(self.doc)
        self.registry = referencing.Registry().with_resource(BASE_URI, resource)
        self._validators = {}
        # Literal paths first: /v2/cache/jobs before /v2/cache/{image_id}.
        self._paths = sorted(
            ((template, re.compile('^%s$' % re.sub(r'\\\{[^}]+\\\}', '[^/]+',
                                                    re.escape(template))))
             for template in self.doc['paths']),
            key=lambda item: (item[0].count('{'), item[0]))

    # -- lookups ---------------------------------------------------------------------

    def match_path(self, path):
        """The path template that ``path`` falls under, or None."""
        for template, regex in self._paths:
            if regex.match(path):
                return template
        return None

    def operations(self):
        """Every (METHOD, template) the document declares."""
        return sorted((method.upper(), template)
                      for template, item in self.doc['paths'].items()
                      for method in item if method in METHODS)

    def operation(self, method, template):
        return self.doc['paths'][template][method.lower()]

    def resolve(self, obj, pointer):
        """Follow a local ``$ref`` (one level is enough here); (object, its pointer)."""
        seen = 0
        while isinstance(obj, dict) and '$ref' in obj:
            ref = obj['$ref']
            assert ref.startswith('#/'), 'only local references are used: %s' % ref
            pointer = ref[1:]
            obj = self.doc
            for token in pointer.split('/')[1:]:
                obj = obj[token.replace('~1', '/').replace('~0', '~')]
            seen += 1
            assert seen < 10, 'reference loop at %s' % ref
        return obj, pointer

    def validator(self, pointer):
        """A 2020-12 validator of the schema at ``pointer`` in the document."""
        if pointer not in self._validators:
            schema = {'$ref': BASE_URI + '#' + pointer}
            self._validators[pointer] = jsonschema.Draft202012Validator(
                schema, registry=self.registry,
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        return self._validators[pointer]

    def schema_errors(self, pointer, instance):
        return ['%s at %s' % (e.message, '/' + '/'.join(map(str, e.absolute_path)))
                for e in self.validator(pointer).iter_errors(instance)]

    # -- the checks ------------------------------------------------------------------

    def problems(self, exchange, check_request=True):
        """What in ``exchange`` the document does not describe; [] when it all conforms.

        With ``check_request``, a request the node accepted (status below 400)
        must itself be described: declared query parameters, a valid JSON body.
        """
        template = self.match_path(exchange.path)
        if template is None:
            return self._response_problems(exchange, self.doc['components']['responses'],
                                           '/components/responses', {'404': {
                                               '$ref': '#/components/responses/NotFound'}})
        item = self.doc['paths'][template]
        method = exchange.method.lower()
        if method == 'head' and 'head' not in item and 'get' in item:
            method = 'get'  # served as the GET; no body to check
        if method not in item:
            allowed = ', '.join(sorted(m.upper() for m in item if m in METHODS))
            problems = self._response_problems(
                exchange, {}, '', {'405': {'$ref': '#/components/responses/MethodNotAllowed'}})
            if exchange.headers.get('allow') != allowed:
                problems.append('Allow is %r, expected %r'
                                % (exchange.headers.get('allow'), allowed))
            return problems
        base = '/paths/%s/%s' % (_escape(template), method)
        operation = item[method]
        problems = self._response_problems(exchange, operation, base, operation['responses'])
        if check_request and exchange.status < 400:
            # A request the node accepted must be one the document describes.
            problems += self._request_problems(exchange, template, item, operation, base)
        return problems

    def _request_problems(self, exchange, template, item, operation, base):
        problems = []
        params = [self.resolve(p, '')[0] for p in item.get('parameters', []) +
                  operation.get('parameters', [])]
        declared = {p['name'] for p in params if p['in'] == 'query'}
        for name in exchange.query:
            if name not in declared:
                problems.append('request: query parameter %r is not declared for %s %s'
                                % (name, exchange.method, template))
        body = operation.get('requestBody')
        if body is not None and isinstance(exchange.request_body, (bytes, str)):
            body, pointer = self.resolve(body, base + '/requestBody')
            media_type = _media_type(exchange.request_headers.get('content-type'))
            # JSON, and the JSON patch media types of PATCH /v2/images/{id}.
            if media_type in body['content'] and 'json' in media_type:
                try:
                    instance = json.loads(exchange.request_body)
                except ValueError:
                    return problems  # deliberately malformed: nothing to check
                schema_pointer = '%s/content/%s/schema' % (pointer, _escape(media_type))
                problems.extend('request body: ' + e
                                for e in self.schema_errors(schema_pointer, instance))
        return problems

    def _response_problems(self, exchange, operation, base, responses):
        status = str(exchange.status)
        key = status if status in responses else '%sXX' % status[0]
        if key not in responses:
            key = 'default'
        if key not in responses:
            return ['status %s is not declared (declared: %s)'
                    % (status, ', '.join(sorted(responses)))]
        response, pointer = self.resolve(responses[key], '%s/responses/%s' % (base, key))
        problems = []
        for name, header in response.get('headers', {}).items():
            header, header_pointer = self.resolve(header, '%s/headers/%s' % (pointer, name))
            value = exchange.headers.get(name.lower())
            if value is None:
                if header.get('required'):
                    problems.append('required header %s is missing' % name)
                continue
            problems.extend('header %s: %s' % (name, e) for e in self.schema_errors(
                header_pointer + '/schema', _header_value(header['schema'], value)))
        content = response.get('content')
        content_type = exchange.headers.get('content-type')
        if exchange.method == 'HEAD':
            return problems
        if not content:
            if exchange.body:
                problems.append('a body is not declared for status %s' % status)
            return problems
        if not exchange.body and content_type is None:
            if not response.get('x-body-optional'):
                problems.append('no body and no Content-Type; declared: %s'
                                % ', '.join(content))
            return problems
        media_type = _media_type(content_type)
        if media_type not in content:
            return problems + ['Content-Type %r is not declared (declared: %s)'
                               % (content_type, ', '.join(content))]
        schema_pointer = '%s/content/%s/schema' % (pointer, _escape(media_type))
        if 'schema' not in content[media_type]:
            return problems
        if _is_json(media_type):
            try:
                instance = json.loads(exchange.body)
            except ValueError as exc:
                return problems + ['body is not JSON: %s' % exc]
        elif media_type.startswith('text/'):
            try:
                instance = exchange.body.decode('utf-8')
            except UnicodeDecodeError as exc:
                return problems + ['body is not UTF-8 text: %s' % exc]
        else:
            return problems  # binary data: nothing to validate
        problems.extend('body: ' + e for e in self.schema_errors(schema_pointer, instance))
        return problems

    def assert_conforms(self, exchange):
        """Raise AssertionError naming every problem of ``exchange``."""
        if not isinstance(exchange, Exchange):
            exchange = Exchange.from_requests(exchange)
        problems = self.problems(exchange)
        assert not problems, 'The answer does not match api-ref/openapi.yaml:\n  %s\n  %s' % (
            exchange, '\n  '.join(problems))
        return exchange


def _header_value(schema, value):
    """A header's text as the instance its schema describes."""
    if schema.get('type') == 'integer':
        try:
            return int(value)
        except ValueError:
            return value
    return value


def error_shape_problems(exchange):
    """For a 4xx/5xx: what differs from the JSON error shape glanceclient needs."""
    if exchange.status < 400:
        return []
    problems = []
    if _media_type(exchange.headers.get('content-type')) != 'application/json':
        problems.append('error with Content-Type %r, not application/json'
                        % exchange.headers.get('content-type'))
    try:
        body = json.loads(exchange.body)
        error = body['error']
        if set(body) != {'error'} or set(error) != {'code', 'title', 'message'}:
            problems.append('error body keys %s' % sorted(body))
        elif error['code'] != exchange.status:
            problems.append('error code %r in a %s answer' % (error['code'], exchange.status))
        elif not isinstance(error['title'], str) or not isinstance(error['message'], str):
            problems.append('error title/message are not strings')
    except (ValueError, KeyError, TypeError) as exc:
        problems.append('error body is not {"error": {...}}: %r (%s)' % (exchange.body[:200],
                                                                        exc))
    return problems
