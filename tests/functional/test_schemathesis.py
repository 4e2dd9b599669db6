"""Schemathesis fuzzes a live node from api-ref/openapi.yaml.

Two phases run on one node seeded with images in every state (queued,
active, cached, pinned, protected, hidden, failed to cache, owned by a
member): first with a member's token, then with an admin's. In each, every
operation gets schemathesis' examples, coverage and fuzzing phases, positive
and negative data, a fixed seed and a bounded number of examples. Every
answer must

- never be a 5xx (``not_a_server_error``);
- have a status, Content-Type, headers and body the document declares
  (schemathesis' conformance checks and ``tests.openapi_check``);
- for a 4xx, be the JSON error ``{"error": {"code", "title", "message"}}``
  with Content-Type application/json;
- reject invalid data (``negative_data_rejection``); a known path with an
  undeclared method must be 405 with ``Allow`` (``unsupported_method``).

Refused requests must change nothing: each phase compares the node's state
(images, cache, queue, jobs, pins, cluster nodes) before and after, leaving
out what the phase's successful mutating requests touched (``Phase.touches``).

Generated image ids and node names are often swapped for the seeded ones so
that requests reach real resources; the swap keeps valid values valid.
/healthcheck and /metrics are not fuzzed yet (another change is adding them).
"""

import collections
import json
import os
import uuid

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks as st_checks

from tests import helpers, openapi_check

# Fixed for CI; a deeper run: GLANCE_CACHE_FUZZ_EXAMPLES=200 GLANCE_CACHE_FUZZ_SEED=7 pytest ...
SEED = int(os.environ.get('GLANCE_CACHE_FUZZ_SEED', '20261126'))
MAX_EXAMPLES = int(os.environ.get('GLANCE_CACHE_FUZZ_EXAMPLES', '8'))
REQUEST_TIMEOUT = 10
NODE = 'fuzz1'
MEMBER = 'demo'
PATCH_TYPES = ('application/openstack-images-v2.1-json-patch',
               'application/openstack-images-v2.0-json-patch')
NOT_LIVE_YET = ('/healthcheck', '/metrics')
MUTATING = ('PUT', 'POST', 'PATCH', 'DELETE')

DOC = openapi_check.OpenAPIDocument()

CONFIG = schemathesis.Config.from_dict({
    'seed': SEED,
    # The token is the phase's, sent with every request; never generated or left out.
    'generation': {'max-examples': MAX_EXAMPLES, 'mode': 'all', 'deterministic': True,
                   'no-shrink': True, 'database': 'none', 'with-security-parameters': False},
    'phases': {'examples': {'enabled': True}, 'coverage': {'enabled': True},
               'fuzzing': {'enabled': True}, 'stateful': {'enabled': False}},
    # 207: a request naming target nodes reports each node's refusal in its outcome.
    'checks': {'negative_data_rejection': {
        'expected-statuses': [207, 400, 401, 403, 404, 405, 409, 413, 415, 416]}},
})
SCHEMA = schemathesis.openapi.from_path(openapi_check.SPEC_PATH, config=CONFIG).exclude(
    path=list(NOT_LIVE_YET))

# The JSON patch media types are JSON on the wire.
schemathesis.serializer.alias(list(PATCH_TYPES), 'application/json')


# -- checks of our own -----------------------------------------------------------------


def json_error_shape(ctx, response, case):
    """Every 4xx/5xx is {"error": {"code", "title", "message"}} as application/json."""
    problems = openapi_check.error_shape_problems(
        openapi_check.Exchange.from_schemathesis(response))
    if problems:
        raise AssertionError('; '.join(problems))


def conforms_to_openapi_yaml(ctx, response, case):
    """tests.openapi_check: status, Content-Type, headers and body as declared."""
    exchange = openapi_check.Exchange.from_schemathesis(response)
    # Requests are judged by negative_data_rejection, which knows what it negated.
    problems = DOC.problems(exchange, check_request=False)
    if problems:
        raise AssertionError('%s\n%s' % (exchange, '\n'.join(problems)))


def _unless_bodiless(check):
    """A schemathesis check, skipped for an answer with no body and no Content-Type
    (``x-body-optional``, which openapi_check judges)."""
    def run(ctx, response, case):
        if not response.content and 'content-type' not in response.headers:
            return None
        return check(ctx, response, case)
    run.__name__ = check.__name__
    return run


CHECKS = [
    not_a_server_error,
    st_checks.status_code_conformance,
    _unless_bodiless(st_checks.content_type_conformance),
    _unless_bodiless(st_checks.response_schema_conformance),
    st_checks.response_headers_conformance,
    st_checks.negative_data_rejection,
    st_checks.missing_required_header,
    st_checks.unsupported_method,
    st_checks.allow_header_conformance,
    json_error_shape,
    conforms_to_openapi_yaml,
]


# -- the node and its state ------------------------------------------------------------


class Seeded:
    """Ids of the seeded resources that generated requests are steered to."""

    image_ids = []
    # The images DELETE /v2/images/{id} is steered to (the others stay for the rest).
    deletable = []
    # Its data in the store fails verification: a download is cut short on purpose
    # (DESIGN.md section 5), which a client reports as a broken connection.
    unreadable = None
    turns = collections.Counter()


def _ok(resp, status):
    assert resp.status_code == status, '%s %s: %s %s' % (
        resp.request.method, resp.request.url, resp.status_code, resp.text)
    return resp


def _seed(node, store_dir):
    """Images in every state the API can show, and a settled cache."""
    def active(token='admin', size=4096, **body):
        image = node.create_active_image(os.urandom(size), token=token, **body)
        return image['id']

    queued = node.create_image(tags=['fuzz'])['id']
    cached = active(tags=['fuzz', 'cached'])
    public = active(visibility='public', os_distro='cirros')
    protected = active(protected=True, visibility='community')
    hidden = active(os_hidden=True)
    pinned = active()
    members = active(token=MEMBER, tags=['mine'])
    broken = active()
    with open(os.path.join(store_dir, broken), 'r+b') as f:  # fails verification
        f.write(b'\0' * 16)
    for image_id in (cached, broken):
        _ok(node.request('PUT', '/v2/cache/%s' % image_id), 202)
    _ok(node.request('PUT', '/v2/cache/pins/%s' % pinned), 201)

    def settled():
        jobs = {j['image_id']: j['state'] for j in
                _ok(node.request('GET', '/v2/cache/jobs'), 200).json()['jobs']}
        return (jobs.get(cached) == 'cached' and jobs.get(pinned) == 'cached'
                and jobs.get(broken) == 'failed')
    helpers.wait_for(settled, 'the seeded cache to settle')
    Seeded.image_ids[:] = [queued, cached, public, protected, hidden, pinned, members,
                           broken]
    Seeded.unreadable = broken
    Seeded.deletable[:] = [node.create_image()['id'], node.create_image()['id'],
                           node.create_image(token=MEMBER)['id'], protected]


@pytest.fixture(scope='module')
def fuzz_node(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('schemathesis')
    node = helpers.Node(workdir, 'sqlite:///%s' % (workdir / 'glance-cache.db'), {
        'DEFAULT': {'node_name': NODE},
        'api': {'image_size_cap': '1000000'},
        'cluster': {'heartbeat_interval': '0.3', 'node_timeout': '2'},
    })
    try:
        node.start()
        _seed(node, node.store_dir)
        yield node
    finally:
        node.stop()


def _get(node, path):
    return _ok(node.request('GET', path, timeout=REQUEST_TIMEOUT), 200).json()


def snapshot(node):
    """The node's state as {(kind, id): value}, read with an admin token."""
    state = {}
    for hidden in ('false', 'true'):
        path = '/v2/images?visibility=all&limit=1000&os_hidden=%s' % hidden
        while path:
            page = _get(node, path)
            state.update((('image', i['id']), i) for i in page['images'])
            path = page.get('next')
    cache = _get(node, '/v2/cache')
    state.update((('cache', e['image_id']), e) for e in cache['cached_images'])
    state.update((('queued', i), True) for i in cache['queued_images'])
    state.update((('job', j['image_id']), j) for j in _get(node, '/v2/cache/jobs')['jobs'])
    state.update((('pin', p['image_id']), p) for p in _get(node, '/v2/cache/pins')['pins'])
    for n in _get(node, '/v2/cache/cluster')['nodes']:
        state[('node', n['name'])] = {k: n[k] for k in (
            'name', 'url', 'state', 'started_at', 'max_size', 'pinned_max_size')}
    return state


def _every_target_refused(exchange):
    """A request naming target nodes that no target carried out (207, none ok)."""
    if exchange.status != 207:
        return False
    return not any(outcome['ok'] for outcome in json.loads(exchange.body)['nodes'])


class Phase:
    """One fuzzing pass with one token: the state before, what it touched, what it saw."""

    def __init__(self, name, node, headers):
        self.name = name
        self.node = node
        self.headers = headers
        self.before = snapshot(node)
        self.touched = set()
        self.calls = collections.Counter()      # operation -> calls
        self.statuses = collections.defaultdict(collections.Counter)
        self.failures = collections.Counter()   # operation -> failing calls
        self.mutations = []                     # successful mutating requests

    def record(self, case, response):
        label = '%s %s' % (case.method.upper(), case.path)
        self.calls[label] += 1
        self.statuses[label][response.status_code] += 1
        exchange = openapi_check.Exchange.from_schemathesis(response)
        if exchange.method in MUTATING and 200 <= response.status_code < 300 and \
                not _every_target_refused(exchange):
            self.mutations.append(str(exchange))
            self.touched |= self.touches(exchange)
        elif exchange.method == 'GET' and exchange.path.endswith('/file') and \
                response.status_code in (200, 206):
            # A download counts a hit or fills the cache.
            self.touched |= self.touches(exchange)

    @staticmethod
    def touches(exchange):
        """The state keys a successful request may have changed ('*': all of a kind)."""
        path, method = exchange.path, exchange.method
        parts = path.strip('/').split('/')

        def cache_of(image_id):
            return {('cache', image_id), ('queued', image_id), ('job', image_id)}

        if path == '/v2/images' and method == 'POST':
            return {('image', json.loads(exchange.body)['id'])}
        if parts[:2] == ['v2', 'images'] and len(parts) >= 3:
            image_id = parts[2]
            keys = {('image', image_id)}
            if method == 'DELETE' or parts[-1] == 'file':
                keys |= cache_of(image_id) | {('pin', image_id)}
            return keys
        if path == '/v2/cache' or path == '/v2/cache/prune':
            return {('cache', '*'), ('queued', '*'), ('job', '*')}
        if path == '/v2/cache/clean':
            return set()  # only incomplete and quarantined files, which no listing shows
        if parts[:3] == ['v2', 'cache', 'pins']:
            return cache_of(parts[3]) | {('pin', parts[3])}
        if parts[:3] == ['v2', 'cache', 'cluster']:
            return {('node', parts[3]), ('pin', '*')}
        if parts[:2] == ['v2', 'cache'] and len(parts) == 3:
            return cache_of(parts[2])
        raise AssertionError('no rule for what %s %s changes' % (method, path))

    def unexplained_changes(self):
        after = snapshot(self.node)
        changed = []
        self.compared = collections.Counter()
        for key in sorted(set(self.before) | set(after)):
            if key in self.touched or (key[0], '*') in self.touched:
                continue
            self.compared[key[0]] += 1
            if self.before.get(key) != after.get(key):
                changed.append('%s: %s -> %s' % (key, self.before.get(key), after.get(key)))
        return changed

    def summary(self):
        declared = set('%s %s' % op for op in DOC.operations())
        probes = [label for label in self.calls if label not in declared]
        lines = ['schemathesis %s phase (seed %d, at most %d fuzzed examples per operation, '
                 'plus examples and coverage cases): %d operations, %d calls, %d calls with '
                 'undeclared methods on %d paths, %d failing calls, %d successful mutating '
                 'calls' % (self.name, SEED, MAX_EXAMPLES, len(self.calls) - len(probes),
                            sum(self.calls.values()),
                            sum(self.calls[label] for label in probes),
                            len({label.split(' ', 1)[1] for label in probes}),
                            sum(self.failures.values()), len(self.mutations))]
        for label in sorted(set(self.calls) - set(probes), key=lambda x: x.split(' ')[::-1]):
            statuses = ' '.join('%s×%d' % item for item in sorted(self.statuses[label].items()))
            lines.append('  %-38s %4d calls  %s%s' % (
                label, self.calls[label], statuses,
                '  FAILED %d' % self.failures[label] if self.failures[label] else ''))
        statuses = collections.Counter()
        for label in probes:
            statuses.update(self.statuses[label])
        lines.append('  %-38s %4d calls  %s' % (
            'undeclared methods', sum(self.calls[label] for label in probes),
            ' '.join('%s×%d' % item for item in sorted(statuses.items()))))
        return '\n'.join(lines)


PHASES = {}


@pytest.fixture(scope='module')
def member_phase(fuzz_node):
    PHASES['member'] = Phase('member', fuzz_node, {'X-Auth-Token': MEMBER})
    return PHASES['member']


@pytest.fixture(scope='module')
def admin_phase(fuzz_node):
    PHASES['admin'] = Phase('admin', fuzz_node, {'X-Auth-Token': 'admin'})
    return PHASES['admin']


# -- steering generated values to seeded resources -----------------------------------


def _pick(case, name, value, choices):
    """The next of ``choices`` or the generated ``value``, in turn per operation and name.

    schemathesis often draws the same value for many cases of an operation (its
    coverage cases vary one thing at a time), so turns, not the value, decide:
    every seeded resource is reached, and so is an unknown one (the 404 paths).
    """
    key = (case.method, case.path, name)
    turn = Seeded.turns[key]
    Seeded.turns[key] += 1
    options = list(choices) + [value]
    return options[turn % len(options)]


def steer(case):
    """Point a generated request at seeded resources, keeping valid values valid.

    Done at call time: schemathesis draws its examples and coverage cases when
    the tests are collected, before the node exists.
    """
    params = case.path_parameters or {}
    image_id = params.get('image_id')
    if isinstance(image_id, str):
        try:
            uuid.UUID(image_id)
        except ValueError:
            pass  # a negative case: keep it
        else:
            choices = Seeded.image_ids
            if case.method.upper() == 'DELETE' and case.path == '/v2/images/{image_id}':
                choices = Seeded.deletable
            elif case.method.upper() == 'GET' and case.path.endswith('/file'):
                choices = [i for i in choices if i != Seeded.unreadable]
            params['image_id'] = _pick(case, 'image_id', image_id, choices)
    if isinstance(params.get('node_name'), str):
        params['node_name'] = _pick(case, 'node_name', params['node_name'], [NODE])
    nodes = (case.query or {}).get('nodes')
    if isinstance(nodes, list) and nodes and all(isinstance(n, str) and n for n in nodes):
        case.query['nodes'] = _pick(case, 'nodes', nodes, [['all'], [NODE]])


# -- the fuzzing -----------------------------------------------------------------------


def _exercise(case, phase):
    steer(case)
    response = case.call(base_url=phase.node.url, headers=phase.headers,
                         timeout=REQUEST_TIMEOUT)
    phase.record(case, response)
    try:
        case.validate_response(response, checks=CHECKS, headers=phase.headers)
    except BaseException:  # schemathesis' FailureGroup is a BaseExceptionGroup
        phase.failures['%s %s' % (case.method.upper(), case.path)] += 1
        raise


@pytest.mark.timeout(120)
@SCHEMA.parametrize()
def test_fuzz_as_member(case, member_phase):
    _exercise(case, member_phase)


def _check_state(phase):
    changes = phase.unexplained_changes()
    print('\n%s\n  state compared before/after: %s; left out (touched by successful '
          'requests): %s' % (phase.summary(), dict(sorted(phase.compared.items())),
                             sorted(phase.touched)))
    assert not changes, 'refused requests changed the state:\n' + '\n'.join(changes)


def test_member_refusals_changed_nothing(member_phase):
    _check_state(member_phase)


@pytest.mark.timeout(120)
@SCHEMA.parametrize()
def test_fuzz_as_admin(case, admin_phase):
    _exercise(case, admin_phase)


def test_admin_refusals_changed_nothing(admin_phase):
    _check_state(admin_phase)
