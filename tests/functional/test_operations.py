"""What operators watch: /metrics, /healthcheck and the job log lines, on real nodes."""

import os
import re
import socket

import pytest
import requests

from tests import helpers
from tests.functional import faulty_store
from tests.functional.faulty_store import CORRUPT, MiB, hold

SAMPLE = re.compile(r'^(glance_cache_\w+)(\{[^}]*\})? (\S+)$')


@pytest.fixture(scope='module')
def node(tmp_path_factory):
    """Two server processes, so that a scrape of either must add up both."""
    workdir = tmp_path_factory.mktemp('operations')
    n = helpers.Node(workdir, 'sqlite:///%s' % (workdir / 'glance-cache.db'), {
        'DEFAULT': {'workers': '2', 'node_name': 'ops-node'},
        'cache': {'max_attempts': '1', 'max_size': str(40 * MiB)}})
    n.start()
    yield n
    n.stop()


def scrape(url):
    """{(name, labels): value} of a scrape of ``url`` (no token)."""
    resp = requests.get(url, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers['Content-Type'].startswith('text/plain')
    samples = {}
    for line in resp.text.splitlines():
        match = SAMPLE.match(line)
        if match:
            samples[(match.group(1), match.group(2) or '')] = float(match.group(3))
    return samples


def metric(samples, name, **labels):
    key = ','.join('%s="%s"' % item for item in sorted(labels.items()))
    return samples.get((name, '{%s}' % key if key else ''), 0.0)


def http_image(node, store, data, plan):
    image = node.create_active_image(data)
    url = store.add(data, plan)
    faulty_store.point_image_at(node, image['id'], url)
    return image, store.image(url)


def job_state(node, image_id):
    resp = node.request('GET', '/v2/cache/jobs/%s' % image_id)
    return resp.json() if resp.status_code == 200 else {}


def test_a_scrape_during_a_fill_shows_the_queue_the_bytes_and_the_hits_moving(node, store):
    before = scrape(node.url + '/metrics')
    data = os.urandom(6 * MiB)
    image, served = http_image(node, store, data, [hold(5 * MiB)])
    try:
        assert node.request('PUT', '/v2/cache/%s' % image['id']).status_code == 202
        helpers.wait_for(lambda: job_state(node, image['id']).get('bytes_done') == 4 * MiB,
                         'the fill to be part done')

        def running_job_scraped():
            samples = scrape(node.url + '/metrics')
            if metric(samples, 'glance_cache_job_bytes_done', image_id=image['id']) > 0:
                return samples
            return None

        during = helpers.wait_for(running_job_scraped, 'the running job in a scrape')
        assert metric(during, 'glance_cache_jobs', state='caching') == 1
        assert metric(during, 'glance_cache_job_size_bytes', image_id=image['id']) == len(data)
        assert 0 < metric(during, 'glance_cache_job_bytes_done',
                          image_id=image['id']) < len(data)
        assert (metric(during, 'glance_cache_fills_started_total')
                == metric(before, 'glance_cache_fills_started_total') + 1)
    finally:
        served.release()
    helpers.wait_for(lambda: job_state(node, image['id']).get('state') == 'cached',
                     'the image to be cached')
    for _ in range(3):
        got = node.request('GET', '/v2/images/%s/file' % image['id'])
        assert got.content == data
    after = scrape(node.url + '/metrics')
    delta = {name: metric(after, name) - metric(before, name) for name in (
        'glance_cache_hits_total', 'glance_cache_fills_succeeded_total',
        'glance_cache_fetched_bytes_total', 'glance_cache_fill_duration_seconds_count',
        'glance_cache_entries', 'glance_cache_size_bytes')}
    # The downloads went to either process: the counts are the node's, not one process's.
    assert delta == {'glance_cache_hits_total': 3, 'glance_cache_fills_succeeded_total': 1,
                     'glance_cache_fetched_bytes_total': len(data),
                     'glance_cache_fill_duration_seconds_count': 1,
                     'glance_cache_entries': 1, 'glance_cache_size_bytes': len(data)}
    assert metric(after, 'glance_cache_jobs', state='caching') == 0
    assert metric(after, 'glance_cache_node_up', node='ops-node') == 1
    assert 0 <= metric(after, 'glance_cache_node_heartbeat_age_seconds', node='ops-node') < 60


def test_failures_misses_and_evictions_are_counted(node, store):
    before = scrape(node.url + '/metrics')
    bad, _served = http_image(node, store, os.urandom(MiB), [CORRUPT])
    assert node.request('PUT', '/v2/cache/%s' % bad['id']).status_code == 202
    helpers.wait_for(lambda: job_state(node, bad['id']).get('state') == 'failed',
                     'the corrupt image to fail')
    # 3 x 16 MiB through a 40 MiB cache: the third evicts the first.
    images = [node.create_active_image(os.urandom(16 * MiB)) for _ in range(3)]
    for image in images:
        assert node.request('GET', '/v2/images/%s/file' % image['id']).status_code == 200
        helpers.wait_for(lambda i=image: any(
            e['image_id'] == i['id']
            for e in node.request('GET', '/v2/cache').json()['cached_images']),
            'the download to fill the cache')
    after = scrape(node.url + '/metrics')
    assert (metric(after, 'glance_cache_fills_failed_total', reason='verification')
            == metric(before, 'glance_cache_fills_failed_total', reason='verification') + 1)
    assert (metric(after, 'glance_cache_misses_total')
            == metric(before, 'glance_cache_misses_total') + 3)
    assert metric(after, 'glance_cache_evictions_total') >= metric(
        before, 'glance_cache_evictions_total') + 1
    assert metric(after, 'glance_cache_size_bytes') <= 40 * MiB


def test_job_changes_are_logged_one_line_each(node):
    image = node.create_active_image(os.urandom(100_000))
    assert node.request('PUT', '/v2/cache/%s' % image['id']).status_code == 202
    helpers.wait_for(lambda: job_state(node, image['id']).get('state') == 'cached', 'cached')
    assert node.request('DELETE', '/v2/cache/%s' % image['id']).status_code == 204
    pattern = re.compile(r'Caching job of image %s: (\S+) -> (\S+)(.*)$' % image['id'])

    def lines():
        found = [pattern.search(line) for line in node.log().splitlines()]
        found = [m for m in found if m]
        return found if len(found) >= 4 else None

    found = helpers.wait_for(lines, 'four job log lines')
    assert [(m.group(1), m.group(2)) for m in found] == [
        ('new', 'queued'), ('queued', 'caching'), ('caching', 'cached'), ('cached', 'removed')]
    assert 'size=100000' in found[0].group(3) and 'by=admin' in found[0].group(3)
    assert re.search(r'attempt=1/1 bytes=100000 duration=\d+\.\d{3}', found[2].group(3))
    assert 'reason="deleted from the cache"' in found[3].group(3)


def test_healthcheck_needs_no_token_and_reports_a_broken_cache_directory(node):
    resp = requests.get(node.url + '/healthcheck', timeout=30)
    assert (resp.status_code, resp.text.split()) == (200, ['OK', 'OK'])
    cache_dir = os.path.join(node.workdir, 'data', 'cache')
    moved = cache_dir + '.moved'
    # Root writes through any mode bits: a file where the directory was breaks it for all.
    os.rename(cache_dir, moved)
    try:
        with open(cache_dir, 'w') as f:
            f.write('not a directory')
        resp = requests.get(node.url + '/healthcheck', timeout=30,
                            headers={'Accept': 'application/json'})
        assert resp.status_code == 503, resp.text
        assert 'cache directory not writable' in resp.json()['reasons']
    finally:
        os.unlink(cache_dir)
        os.rename(moved, cache_dir)
    assert requests.get(node.url + '/healthcheck', timeout=30).status_code == 200


def test_healthcheck_reports_an_unreachable_database(tmp_path):
    db = helpers.ThrowawayDatabase('postgresql')
    url = db.create(str(tmp_path))
    n = helpers.Node(tmp_path / 'node', url)
    n.start()
    try:
        assert requests.get(n.url + '/healthcheck', timeout=30).status_code == 200
        db.drop()  # WITH (FORCE): the node's connections are cut
        # The last result may be served for up to two seconds.

        def unhealthy():
            resp = requests.get(n.url + '/healthcheck', timeout=30)
            # A list: a Response for a 5xx is falsy.
            return [resp] if resp.status_code != 200 else None

        [resp] = helpers.wait_for(unhealthy, 'the health check to notice')
        assert resp.status_code == 503, resp.text
        assert resp.text.startswith('database unreachable')
    finally:
        n.stop()
        db.drop()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_metrics_can_be_turned_off(sqlite_node_factory):
    n = sqlite_node_factory({'metrics': {'enabled': 'false'}})
    # An ordinary unknown path now: authentication first, then 404.
    assert requests.get(n.url + '/metrics', timeout=30).status_code == 401
    assert n.request('GET', '/metrics').status_code == 404
    assert requests.get(n.url + '/healthcheck', timeout=30).status_code == 200


def test_metrics_on_a_listener_of_their_own(sqlite_node_factory):
    port = _free_port()
    n = sqlite_node_factory({'metrics': {'bind_host': '127.0.0.1', 'bind_port': str(port)}})
    # Not on the API port, where anyone who reaches the API would see them.
    assert requests.get(n.url + '/metrics', timeout=30).status_code == 401
    resp = n.request('GET', '/metrics')
    assert resp.status_code == 404 and resp.json()['error']['code'] == 404
    samples = helpers.wait_for(lambda: _try_scrape('http://127.0.0.1:%d/metrics' % port),
                               'the metrics listener')
    assert ('glance_cache_entries', '') in samples


def _try_scrape(url):
    try:
        return scrape(url)
    except requests.ConnectionError:
        return None


def test_a_node_without_cache_answers_health_and_metrics(sqlite_node_factory):
    n = sqlite_node_factory({'cache': {'enabled': 'false'}})
    assert requests.get(n.url + '/healthcheck', timeout=30).status_code == 200
    samples = scrape(n.url + '/metrics')
    assert ('glance_cache_hits_total', '') in samples
    assert ('glance_cache_entries', '') not in samples


def test_health_and_metrics_only_answer_reads(node):
    for path in ('/healthcheck', '/metrics'):
        for method in ('POST', 'TRACE', 'DELETE'):
            resp = requests.request(method, node.url + path, timeout=30)
            assert resp.status_code == 405, (method, path, resp.text)
            assert resp.json()['error']['code'] == 405
            assert resp.headers['Allow'] == 'GET, HEAD'
        assert requests.head(node.url + path, timeout=30).status_code in (200, 204)
