"""api-ref/openapi.yaml: a valid OpenAPI 3.1 document that real nodes answer by.

The document is validated as OpenAPI 3.1, compared with the route table, and
then two real nodes (one SQLite database, one store) are driven through every
operation, successes and the main errors. Every answer is checked against the
document by ``tests.openapi_check``: status declared for the operation,
Content-Type, required headers and the body against the declared schema
(JSON Schema 2020-12). A known path with another method must be the declared
405 and an unknown path the declared 404.

/healthcheck and /metrics are described but not driven here yet.
"""

import http.client
import inspect
import json
import os
import select
import urllib.parse
import uuid

import openapi_spec_validator
import pytest

from glance_cache import router
from tests import helpers, openapi_check

HEARTBEAT_INTERVAL = 0.3
NODE_TIMEOUT = 2.0
CAP = 100_000             # [api] image_size_cap of the nodes
PIN_BUDGET = 50_000       # [cache] pinned_max_size of the nodes
PATCH_TYPE = 'application/openstack-images-v2.1-json-patch'
MEMBER = 'demo'           # noauth: a member of project "demo"
NOT_YET_LIVE = {('GET', '/healthcheck'), ('GET', '/metrics')}

DOC = openapi_check.OpenAPIDocument()

# (METHOD, path template) -> statuses seen, for the coverage test at the end.
DRIVEN = {}
# Names of the driving tests that ran to their end.
FINISHED = set()


class Cluster:
    """Nodes sharing one SQLite database file and one store directory."""

    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.db_url = 'sqlite:///%s' % os.path.join(self.workdir, 'glance-cache.db')
        self.store_dir = os.path.join(self.workdir, 'images')
        self.nodes = {}

    def start(self, name):
        node = helpers.Node(os.path.join(self.workdir, name), self.db_url, {
            'DEFAULT': {'node_name': name},
            'api': {'image_size_cap': str(CAP)},
            'glance_store': {'filesystem_store_datadir': self.store_dir},
            'cache': {'pinned_max_size': str(PIN_BUDGET)},
            'cluster': {'heartbeat_interval': str(HEARTBEAT_INTERVAL),
                        'node_timeout': str(NODE_TIMEOUT)},
        })
        node.name = name
        self.nodes[name] = node
        node.start()
        helpers.wait_for(lambda: self.state(name) == 'up', '%s to be up' % name)
        return node

    def state(self, name, via=None):
        via = self.nodes[via] if via else next(iter(self.nodes.values()))
        resp = via.request('GET', '/v2/cache/cluster')
        assert resp.status_code == 200, resp.text
        return {n['name']: n['state'] for n in resp.json()['nodes']}.get(name)

    def stop(self):
        for node in self.nodes.values():
            node.stop()


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp('openapi'))
    try:
        c.start('node1')
        c.start('node2')
        yield c
    finally:
        c.stop()


@pytest.fixture(scope='module')
def node1(cluster):
    return cluster.nodes['node1']


@pytest.fixture(scope='module')
def node2(cluster):
    return cluster.nodes['node2']


@pytest.fixture
def finished(request):
    """Call at the end of a driving test: the coverage test counts on it."""
    return lambda: FINISHED.add(request.node.name)


def call(node, method, path, expect, token='admin', **kwargs):
    """One request; assert its status and that the answer matches the document."""
    resp = node.request(method, path, token=token, **kwargs)
    exchange = DOC.assert_conforms(resp)
    assert resp.status_code == expect, '%s: expected %s' % (exchange, expect)
    if resp.status_code >= 400:
        problems = openapi_check.error_shape_problems(exchange)
        assert not problems, '%s: %s' % (exchange, problems)
    template = DOC.match_path(exchange.path)
    if template is not None and method.lower() in DOC.doc['paths'][template]:
        DRIVEN.setdefault((method.upper(), template), set()).add(resp.status_code)
    return resp


def patch(node, image_id, ops, expect, token='admin', content_type=PATCH_TYPE):
    return call(node, 'PATCH', '/v2/images/%s' % image_id, expect, token=token,
                data=json.dumps(ops), headers={'Content-Type': content_type})


def upload(node, image_id, data, expect, token='admin', headers=None):
    all_headers = {'Content-Type': 'application/octet-stream'}
    all_headers.update(headers or {})
    return call(node, 'PUT', '/v2/images/%s/file' % image_id, expect, token=token,
                data=data, headers=all_headers)


def new_image(node, token='admin', **body):
    body.setdefault('name', 'openapi-%s' % uuid.uuid4().hex[:8])
    body.setdefault('disk_format', 'raw')
    body.setdefault('container_format', 'bare')
    return call(node, 'POST', '/v2/images', 201, token=token, json=body).json()


def active_image(node, size=10_000, **body):
    image = new_image(node, **body)
    data = os.urandom(size)
    upload(node, image['id'], data, 204)
    return call(node, 'GET', '/v2/images/%s' % image['id'], 200).json(), data


def cached_ids(node):
    return {e['image_id'] for e in call(node, 'GET', '/v2/cache', 200).json()['cached_images']}


def wait_cached(node, image_id):
    helpers.wait_for(lambda: image_id in cached_ids(node),
                     'image %s cached on %s' % (image_id, node.name))


def job(node, image_id):
    return call(node, 'GET', '/v2/cache/jobs/%s' % image_id, 200).json()


# -- the document --------------------------------------------------------------------


def test_document_is_valid_openapi_3_1():
    document = openapi_check.load()
    assert document['openapi'].startswith('3.1.')
    openapi_spec_validator.validate(document)  # picks the 3.1 validator by the version


def test_validator_rejects_a_broken_document():
    document = openapi_check.load()
    document['paths']['/v2/cache']['get']['responses']['200']['content'][
        'application/json']['schema'] = {'$ref': '#/components/schemas/NoSuchSchema'}
    with pytest.raises(Exception, match='NoSuchSchema'):
        openapi_spec_validator.validate(document)


def test_document_describes_every_route_of_the_router():
    routes = {(method, path)
              for table in (router.ROUTE_DECLARATIONS, router.CACHE_ROUTE_DECLARATIONS)
              for path, methods in table.items() for method in methods}
    assert routes == set(DOC.operations()) - NOT_YET_LIVE


def test_every_operation_declares_its_errors_in_the_json_shape():
    ids = set()
    for method, template in DOC.operations():
        operation = DOC.operation(method, template)
        assert operation['operationId'] not in ids
        ids.add(operation['operationId'])
        responses = operation['responses']
        secured = operation.get('security', DOC.doc['security']) != []
        assert ('401' in responses) == secured, (method, template)
        if '{image_id}' in template:
            assert '404' in responses, (method, template)
        for code, response in responses.items():
            response, _ = DOC.resolve(response, '')
            if code.startswith('4'):
                schema = response['content']['application/json']['schema']
                assert schema == {'$ref': '#/components/schemas/Error'}, (method, template, code)


def test_checker_catches_answers_that_do_not_match(node1):
    """The checker itself: a schema broken on purpose must fail on live answers."""
    image, _ = active_image(node1)
    document = openapi_check.load()
    schemas = document['components']['schemas']
    schemas['Image']['properties']['size'] = {'type': 'string'}
    schemas['CacheList']['required'].append('cache_size')
    del document['paths']['/v2/images/{image_id}']['get']['responses']['404']
    broken = openapi_check.OpenAPIDocument(document=document)
    exchange = openapi_check.Exchange.from_requests(
        node1.request('GET', '/v2/images/%s' % image['id']))
    assert any('size' in p for p in broken.problems(exchange)), broken.problems(exchange)
    exchange = openapi_check.Exchange.from_requests(node1.request('GET', '/v2/cache'))
    assert any('cache_size' in p for p in broken.problems(exchange))
    exchange = openapi_check.Exchange.from_requests(
        node1.request('GET', '/v2/images/%s' % uuid.uuid4()))
    assert broken.problems(exchange) == ['status 404 is not declared (declared: 200, 401)']
    # An error body of another shape, and a 202 body that is not JSON.
    fake = openapi_check.Exchange('GET', '/v2/images/x', 404,
                                  {'Content-Type': 'application/json'}, b'{"error": "no"}')
    assert DOC.problems(fake) and openapi_check.error_shape_problems(fake)
    fake = openapi_check.Exchange('PUT', '/v2/cache/%s' % uuid.uuid4(), 202,
                                  {'Content-Type': 'text/html'}, b'<p>ok</p>')
    assert DOC.problems(fake) == ["Content-Type 'text/html' is not declared "
                                  "(declared: application/json)"]


# -- versions and schemas ------------------------------------------------------------


def test_versions_and_schemas(node1, finished):
    versions = call(node1, 'GET', '/', 300, token=None).json()['versions']
    assert {'v2.14', 'v2.18'} <= {v['id'] for v in versions}
    call(node1, 'GET', '/versions', 200, token=None)
    call(node1, 'GET', '/v2/schemas/image', 200)
    call(node1, 'GET', '/v2/schemas/images', 200)
    call(node1, 'GET', '/v2/schemas/image', 401, token=None)
    finished()


# -- images --------------------------------------------------------------------------


def test_image_records(node1, finished):
    tag = uuid.uuid4().hex
    first = new_image(node1, tags=[tag, 'openapi'], os_distro='cirros', min_ram=64)
    second = new_image(node1, id=str(uuid.uuid4()), tags=[tag], visibility='private',
                       protected=True)
    hidden = new_image(node1, tags=[tag], os_hidden=True)
    new_image(node1, token=MEMBER, tags=[tag])

    call(node1, 'POST', '/v2/images', 409, json={'id': first['id']})
    call(node1, 'POST', '/v2/images', 400, json={'min_disk': -1})
    call(node1, 'POST', '/v2/images', 400, json=['not', 'an', 'object'])
    call(node1, 'POST', '/v2/images', 403, json={'status': 'active'})
    call(node1, 'POST', '/v2/images', 403, token=MEMBER, json={'visibility': 'public'})
    call(node1, 'POST', '/v2/images', 415, data='name=x',
         headers={'Content-Type': 'application/x-www-form-urlencoded'})

    # Paging: next, then marker; filters; sorting.
    page = call(node1, 'GET', '/v2/images?tag=%s&limit=1&sort_key=name&sort_dir=asc' % tag,
                200).json()
    assert len(page['images']) == 1 and 'next' in page
    rest = call(node1, 'GET', page['next'], 200).json()
    assert page['images'][0]['id'] not in {i['id'] for i in rest['images']}
    listed = call(node1, 'GET', '/v2/images?tag=%s&tag=openapi&status=queued&owner=admin'
                  '&visibility=shared&name=%s' % (tag, first['name']), 200).json()
    assert [i['id'] for i in listed['images']] == [first['id']]
    listed = call(node1, 'GET', '/v2/images?tag=%s&os_hidden=true&visibility=all' % tag,
                  200).json()
    assert [i['id'] for i in listed['images']] == [hidden['id']]
    call(node1, 'GET', '/v2/images?tag=%s&marker=%s&limit=0' % (tag, second['id']), 200)
    mine = call(node1, 'GET', '/v2/images?tag=%s' % tag, 200, token=MEMBER).json()
    assert {i['owner'] for i in mine['images']} == {MEMBER}
    for query in ('limit=-1', 'limit=x', 'sort_key=bogus', 'sort_dir=up', 'marker=nope',
                  'visibility=everyone', 'status=gone', 'os_hidden=maybe'):
        call(node1, 'GET', '/v2/images?' + query, 400)
    call(node1, 'GET', '/v2/images', 403, token=None, headers={'X-Roles': 'nobody'})

    call(node1, 'GET', '/v2/images/%s' % first['id'], 200)
    call(node1, 'GET', '/v2/images/%s' % uuid.uuid4(), 404)
    call(node1, 'GET', '/v2/images/not-a-uuid', 404)
    call(node1, 'GET', '/v2/images/%s' % first['id'], 404, token=MEMBER)

    changed = patch(node1, first['id'], [
        {'op': 'replace', 'path': '/name', 'value': 'renamed'},
        {'op': 'add', 'path': '/hw_disk_bus', 'value': 'scsi'},
        {'op': 'remove', 'path': '/os_distro'},
        {'op': 'replace', 'path': '/tags', 'value': ['a', 'b']}], 200).json()
    assert changed['name'] == 'renamed' and changed['hw_disk_bus'] == 'scsi'
    patch(node1, first['id'], [{'op': 'add', 'path': '/min_ram', 'value': 'lots'}], 400)
    patch(node1, first['id'], [{'op': 'move', 'path': '/name', 'value': 'x'}], 400)
    patch(node1, first['id'], {'op': 'add'}, 400)
    patch(node1, first['id'], [{'op': 'replace', 'path': '/status', 'value': 'active'}], 403)
    patch(node1, first['id'], [{'op': 'remove', 'path': '/name'}], 403)
    patch(node1, first['id'], [{'op': 'remove', 'path': '/no_such_property'}], 409)
    patch(node1, first['id'], [], 415, content_type='application/json')
    patch(node1, str(uuid.uuid4()), [], 404)
    patch(node1, first['id'], [], 404, token=MEMBER)

    call(node1, 'DELETE', '/v2/images/%s' % second['id'], 403)  # protected
    patch(node1, second['id'], [{'op': 'replace', 'path': '/protected', 'value': False}], 200)
    call(node1, 'DELETE', '/v2/images/%s' % second['id'], 204)
    call(node1, 'DELETE', '/v2/images/%s' % second['id'], 404)
    call(node1, 'DELETE', '/v2/images/%s' % first['id'], 404, token=MEMBER)
    call(node1, 'DELETE', '/v2/images/nope', 404)
    finished()


def test_image_data(node1, node2, finished):
    image = new_image(node1)
    call(node1, 'GET', '/v2/images/%s/file' % image['id'], 204)
    upload(node1, image['id'], b'x', 415, headers={'Content-Type': 'text/plain'})
    upload(node1, image['id'], b'x' * 10, 400, headers={'x-openstack-image-size': '11'})
    upload(node1, image['id'], b'x', 400, headers={'x-openstack-image-size': '-1'})
    # On a connection of their own: see test_413_keeps_its_keep_alive_promise.
    upload(node1, image['id'], b'x' * (CAP + 1), 413, headers={'Connection': 'close'})
    upload(node1, image['id'], helpers.chunks(b'y' * (CAP + 1), 10_000), 413,
           headers={'Connection': 'close'})
    upload(node1, image['id'], b'x', 413, headers={'x-openstack-image-size': str(CAP + 1)})
    upload(node1, str(uuid.uuid4()), b'x', 404)
    upload(node1, image['id'], b'x', 404, token=MEMBER)
    data = os.urandom(30_000)
    upload(node1, image['id'], helpers.chunks(data, 10_000), 204,
           headers={'x-openstack-image-size': str(len(data))})
    upload(node1, image['id'], b'again', 409)

    # Served by either node; whole, by range, and ranges outside the data.
    for node in (node1, node2):
        got = call(node, 'GET', '/v2/images/%s/file' % image['id'], 200)
        assert got.content == data
    got = call(node1, 'GET', '/v2/images/%s/file' % image['id'], 206,
               headers={'Range': 'bytes=100-199'})
    assert got.content == data[100:200]
    got = call(node2, 'GET', '/v2/images/%s/file' % image['id'], 206,
               headers={'Range': 'bytes=-10'})
    assert got.content == data[-10:]
    call(node1, 'GET', '/v2/images/%s/file' % image['id'], 416,
         headers={'Range': 'bytes=%d-' % len(data)})
    call(node1, 'GET', '/v2/images/%s/file' % image['id'], 416, headers={'Range': 'bytes=-0'})
    call(node1, 'GET', '/v2/images/%s/file' % uuid.uuid4(), 404)
    call(node1, 'GET', '/v2/images/%s/file' % image['id'], 404, token=MEMBER)
    call(node1, 'HEAD', '/v2/images/%s/file' % image['id'], 200)

    empty = new_image(node1)
    upload(node1, empty['id'], b'', 204)
    assert call(node1, 'GET', '/v2/images/%s/file' % empty['id'], 200).content == b''
    call(node1, 'GET', '/v2/images/%s/file' % empty['id'], 416, headers={'Range': 'bytes=0-'})

    public, _ = active_image(node1, visibility='public')
    call(node1, 'GET', '/v2/images/%s/file' % public['id'], 200, token=MEMBER)
    call(node1, 'PUT', '/v2/images/%s/file' % public['id'], 403, token=MEMBER,
         data=b'x', headers={'Content-Type': 'application/octet-stream'})
    # A reader of the owning project sees the image but may not download it.
    call(node1, 'GET', '/v2/images/%s/file' % image['id'], 403, token=None,
         headers={'X-Roles': 'reader', 'X-Project-Id': 'admin'})
    finished()


def test_413_keeps_its_keep_alive_promise(node1):
    image = new_image(node1)
    host, port = urllib.parse.urlsplit(node1.url).netloc.split(':')
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request('PUT', '/v2/images/%s/file' % image['id'], body=b'x' * (CAP + 1),
                     headers={'X-Auth-Token': 'admin',
                              'Content-Type': 'application/octet-stream'})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 413
        if (resp.getheader('Connection') or '').lower() == 'close':
            return  # promised nothing
        # Kept alive: the connection must not end; no answer comes on an idle one.
        readable, _, _ = select.select([conn.sock], [], [], 3)
        assert not readable, 'the node closed a connection it said it would keep alive'
    finally:
        conn.close()


def test_suffix_range_of_an_empty_image(node1):
    image = new_image(node1)
    upload(node1, image['id'], b'', 204)
    call(node1, 'GET', '/v2/images/%s/file' % image['id'], 416, headers={'Range': 'bytes=-1'})


# -- the cache of one node -----------------------------------------------------------


def test_cache_api(cluster, node1, finished):
    image, _ = active_image(node1)
    queued = new_image(node1)
    call(node1, 'PUT', '/v2/cache/%s' % image['id'], 202)
    call(node1, 'PUT', '/v2/cache/%s' % image['id'], 202)  # repeated: nothing more
    call(node1, 'PUT', '/v2/cache/%s' % queued['id'], 400)
    call(node1, 'PUT', '/v2/cache/%s' % uuid.uuid4(), 404)
    call(node1, 'PUT', '/v2/cache/not-a-uuid', 404)
    public, _ = active_image(node1, visibility='public')
    call(node1, 'PUT', '/v2/cache/%s' % public['id'], 403, token=MEMBER)
    wait_cached(node1, image['id'])

    listing = call(node1, 'GET', '/v2/cache', 200).json()
    assert image['id'] in {e['image_id'] for e in listing['cached_images']}
    call(node1, 'GET', '/v2/cache', 403, token=MEMBER)
    assert job(node1, image['id'])['state'] == 'cached'
    call(node1, 'GET', '/v2/cache/jobs', 200)
    jobs = call(node1, 'GET', '/v2/cache/jobs?state=cached', 200).json()['jobs']
    assert image['id'] in {j['image_id'] for j in jobs}
    call(node1, 'GET', '/v2/cache/jobs?state=done', 400)
    call(node1, 'GET', '/v2/cache/jobs', 403, token=MEMBER)
    call(node1, 'GET', '/v2/cache/jobs/%s' % uuid.uuid4(), 404)
    call(node1, 'GET', '/v2/cache/jobs/%s' % image['id'], 403, token=MEMBER)

    # A failed job: data in the store no longer matches the image's checksum.
    broken, data = active_image(node1)
    with open(os.path.join(cluster.store_dir, broken['id']), 'wb') as f:
        f.write(bytes(b ^ 0xFF for b in data))
    call(node1, 'PUT', '/v2/cache/%s' % broken['id'], 202)
    helpers.wait_for(lambda: job(node1, broken['id'])['state'] == 'failed', 'a failed job')
    assert job(node1, broken['id'])['last_error']
    call(node1, 'GET', '/v2/cache/jobs?state=failed', 200)

    call(node1, 'POST', '/v2/cache/clean', 200)
    call(node1, 'POST', '/v2/cache/prune', 200)
    call(node1, 'POST', '/v2/cache/clean', 403, token=MEMBER)
    call(node1, 'POST', '/v2/cache/prune', 403, token=MEMBER)

    call(node1, 'DELETE', '/v2/cache/%s' % image['id'], 204)
    call(node1, 'DELETE', '/v2/cache/%s' % image['id'], 204)  # the image still exists
    call(node1, 'DELETE', '/v2/cache/%s' % uuid.uuid4(), 404)
    call(node1, 'DELETE', '/v2/cache/%s' % image['id'], 403, token=MEMBER)
    for target in ('cache', 'queue', '', 'both'):
        call(node1, 'DELETE', '/v2/cache', 204,
             headers={'x-image-cache-clear-target': target})
    call(node1, 'DELETE', '/v2/cache', 204)
    call(node1, 'DELETE', '/v2/cache', 400, headers={'x-image-cache-clear-target': 'all'})
    call(node1, 'DELETE', '/v2/cache', 403, token=MEMBER)
    finished()


# -- several nodes -------------------------------------------------------------------


def test_target_nodes(cluster, node1, node2, finished):
    image, _ = active_image(node1)
    image_id = image['id']
    outcomes = call(node1, 'PUT', '/v2/cache/%s?nodes=all' % image_id, 202).json()['nodes']
    assert [o['node'] for o in outcomes] == ['node1', 'node2'] and all(o['ok']
                                                                       for o in outcomes)
    wait_cached(node1, image_id)
    wait_cached(node2, image_id)
    helpers.wait_for(lambda: sorted(call(node2, 'GET', '/v2/cache/nodes/%s' % image_id,
                                         200).json()) == sorted([node1.url, node2.url]),
                     'both holders recorded')
    answer = call(node2, 'GET', '/v2/cache/jobs/%s?nodes=node1,node2' % image_id, 200).json()
    assert [o['body']['state'] for o in answer['nodes']] == ['cached', 'cached']
    call(node1, 'GET', '/v2/cache/nodes/%s' % uuid.uuid4(), 404)
    public, _ = active_image(node1, visibility='public')
    call(node1, 'GET', '/v2/cache/nodes/%s' % public['id'], 403, token=MEMBER)
    call(node1, 'GET', '/v2/cache/nodes/%s' % image_id, 404, token=MEMBER)  # invisible
    assert call(node1, 'GET', '/v2/cache/nodes/%s' % new_image(node1)['id'], 200).json() == []

    call(node1, 'DELETE', '/v2/cache/%s?nodes=node2' % image_id, 200)
    answer = call(node1, 'GET', '/v2/cache/jobs/%s?nodes=node1&nodes=node2' % image_id,
                  207).json()
    assert [o['ok'] for o in answer['nodes']] == [True, False]
    for query in ('nodes=', 'nodes=all,node1', 'nodes=nosuchnode'):
        call(node1, 'PUT', '/v2/cache/%s?%s' % (image_id, query), 400)
        call(node1, 'DELETE', '/v2/cache/%s?%s' % (image_id, query), 400)
        call(node1, 'GET', '/v2/cache/jobs/%s?%s' % (image_id, query), 400)
        call(node1, 'DELETE', '/v2/cache?%s' % query, 400)
    call(node1, 'DELETE', '/v2/cache/%s?nodes=all' % image_id, 200)
    call(node1, 'DELETE', '/v2/cache?nodes=all', 200,
         headers={'x-image-cache-clear-target': 'queue'})

    view = call(node2, 'GET', '/v2/cache/cluster', 200).json()
    assert {n['name']: n['state'] for n in view['nodes']} == {'node1': 'up', 'node2': 'up'}
    call(node1, 'GET', '/v2/cache/cluster', 403, token=MEMBER)
    call(node1, 'DELETE', '/v2/cache/cluster/node2', 409)
    call(node1, 'DELETE', '/v2/cache/cluster/nosuchnode', 404)
    call(node1, 'DELETE', '/v2/cache/cluster/node2', 403, token=MEMBER)
    finished()


def test_pins(node1, node2, finished):
    image, _ = active_image(node1)
    image_id = image['id']
    pin = call(node1, 'PUT', '/v2/cache/pins/%s' % image_id, 201).json()
    assert pin['nodes'] == ['all'] and len(pin['caching']) == 2
    call(node2, 'PUT', '/v2/cache/pins/%s?nodes=all' % image_id, 200)
    call(node1, 'PUT', '/v2/cache/pins/%s?nodes=node2' % image_id, 201)
    pins = call(node1, 'GET', '/v2/cache/pins', 200).json()['pins']
    assert {p['image_id']: sorted(p['nodes']) for p in pins}[image_id] == ['all', 'node2']
    wait_cached(node2, image_id)
    call(node2, 'DELETE', '/v2/cache/%s' % image_id, 409)  # pinned here
    call(node1, 'DELETE', '/v2/cache/pins/%s?nodes=node2' % image_id, 204)
    call(node1, 'DELETE', '/v2/cache/pins/%s?nodes=node2' % image_id, 404)
    call(node1, 'DELETE', '/v2/cache/pins/%s' % image_id, 204)
    call(node1, 'DELETE', '/v2/cache/pins/%s' % image_id, 404)
    call(node1, 'DELETE', '/v2/cache/pins/%s?nodes=' % image_id, 400)

    call(node1, 'PUT', '/v2/cache/pins/%s' % new_image(node1)['id'], 400)  # not active
    call(node1, 'PUT', '/v2/cache/pins/%s?nodes=nosuchnode' % image_id, 400)
    call(node1, 'PUT', '/v2/cache/pins/%s' % uuid.uuid4(), 404)
    too_big, _ = active_image(node1, size=PIN_BUDGET + 1)
    call(node1, 'PUT', '/v2/cache/pins/%s' % too_big['id'], 409)
    public, _ = active_image(node1, visibility='public')
    call(node1, 'PUT', '/v2/cache/pins/%s' % public['id'], 403, token=MEMBER)
    call(node1, 'DELETE', '/v2/cache/pins/%s' % public['id'], 403, token=MEMBER)
    call(node1, 'GET', '/v2/cache/pins', 403, token=MEMBER)
    finished()


def test_a_node_that_is_down(cluster, node1, finished):
    """207 answers naming a down node, and forgetting it."""
    node3 = cluster.start('node3')
    image, _ = active_image(node1)
    call(node1, 'PUT', '/v2/cache/%s?nodes=node3' % image['id'], 202)
    node3.stop()
    helpers.wait_for(lambda: cluster.state('node3') == 'down', 'node3 to be down',
                     timeout=NODE_TIMEOUT * 10)
    answer = call(node1, 'PUT', '/v2/cache/%s?nodes=all' % image['id'], 207).json()
    down = {o['node']: o for o in answer['nodes']}['node3']
    assert down['state'] == 'down' and down['status'] is None and not down['ok']
    call(node1, 'DELETE', '/v2/cache/%s?nodes=node1,node3' % image['id'], 207)
    call(node1, 'DELETE', '/v2/cache?nodes=node3', 207)
    call(node1, 'GET', '/v2/cache/jobs/%s?nodes=all' % image['id'], 207)
    call(node1, 'DELETE', '/v2/cache/cluster/node3', 204)
    call(node1, 'DELETE', '/v2/cache/cluster/node3', 404)
    del cluster.nodes['node3']
    finished()


# -- inputs schemathesis does not generate -----------------------------------------------

@pytest.mark.parametrize('method, path, body, content_type, expect', [
    pytest.param('GET', '/v2/images/%ff', None, None, 401, id='bad path, no token'),
    pytest.param('GET', '/v2/images?name=%ff', None, None, 400,
                 id='images ?name=%ff'),
    pytest.param('PUT', '/v2/cache/{image}?nodes=%ff', None, None, 400, id='cache ?nodes=%ff'),
    pytest.param('GET', '/v2/images/%ff', None, None, 404, id='images/%ff'),
    pytest.param('POST', '/v2/images', b'{"name": "\\ud800"}', 'application/json', 400,
                 id='create, lone surrogate'),
    pytest.param('PATCH', '/v2/images/{image}',
                 b'[{"op": "add", "path": "/os_x", "value": "\\udfff"}]', PATCH_TYPE, 400,
                 id='patch, lone surrogate'),
    pytest.param('POST', '/v2/images', b'{"name": "\\ud83d\\ude00"}', 'application/json',
                 201, id='create, surrogate pair'),
])
def test_odd_but_well_formed_requests(node1, method, path, body, content_type, expect):
    """Bytes schemathesis never sends (it generates valid UTF-8 without lone surrogates)."""
    image = new_image(node1)
    headers = {'Content-Type': content_type} if content_type else {}
    token = None if expect == 401 else 'admin'
    call(node1, method, path.replace('{image}', image['id']), expect, token=token, data=body,
         headers=headers)


@pytest.fixture(scope='module')
def pg_node(tmp_path_factory, throwaway_db_factory):
    node = helpers.Node(tmp_path_factory.mktemp('openapi-pg'),
                        throwaway_db_factory('postgresql'))
    node.start()
    yield node
    node.stop()


@pytest.mark.parametrize('method, path, body', [
    ('POST', '/v2/images', b'{"name": "a\\u0000b"}'),
    ('GET', '/v2/images?name=a%00b', None),
])
def test_nul_characters_on_postgresql(pg_node, method, path, body):
    """PostgreSQL cannot store NUL: refused (400) on every backend, before any query."""
    call(pg_node, method, path, 400, data=body,
         headers={'Content-Type': 'application/json'} if body else {})


# -- what every path answers ---------------------------------------------------------


def _concrete(template):
    return template.replace('{image_id}', str(uuid.uuid4())).replace('{node_name}', 'nobody')


def test_every_operation_needs_a_token(node1, finished):
    for method, template in DOC.operations():
        if (method, template) in NOT_YET_LIVE:
            continue
        operation = DOC.operation(method, template)
        if operation.get('security', DOC.doc['security']) == []:
            continue
        call(node1, method, _concrete(template), 401, token=None)
    finished()


def test_other_methods_are_405_and_unknown_paths_404(node1, finished):
    for template, item in DOC.doc['paths'].items():
        if ('GET', template) in NOT_YET_LIVE:
            continue
        for method in ('GET', 'PUT', 'POST', 'DELETE', 'PATCH'):
            if method.lower() not in item:
                call(node1, method, _concrete(template), 405)
    for path in ('/v3/images', '/v2/images/%s/data' % uuid.uuid4(), '/v2/cache/a/b/c'):
        call(node1, 'GET', path, 404)
    finished()


def test_every_operation_was_driven():
    """Each operation of the document answered every status it declares, live."""
    driving = {name for name, value in globals().items() if name.startswith('test_')
               and 'finished' in inspect.signature(value).parameters}
    if set(driving) - FINISHED:
        pytest.skip('needs the whole module: %s did not finish'
                    % ', '.join(sorted(set(driving) - FINISHED)))
    missing = []
    for method, template in DOC.operations():
        if (method, template) in NOT_YET_LIVE:
            continue
        statuses = DRIVEN.get((method, template), set())
        declared = set(map(int, DOC.operation(method, template)['responses']))
        print('%-7s %-32s %s' % (method, template, ' '.join(map(str, sorted(statuses)))))
        if declared - statuses:
            missing.append('%s %s: %s never seen' % (method, template,
                                                     sorted(declared - statuses)))
    assert not missing, missing
