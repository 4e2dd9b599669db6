"""Units of glance-cache-manage's cache commands: progress, waiting, tables, client set-up,
and the cluster commands: --nodes outcomes, waiting on several nodes, nodes and pins."""

import argparse
import io
import json
import types

import pytest

from glance_cache.cmd import cache_client, cache_commands, cluster_commands, progress, runner


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class TTYStream(io.StringIO):
    def isatty(self):
        return True


def job(state, done=0, size=1000, attempts=1, error=None, image_id='img'):
    return {'image_id': image_id, 'state': state, 'bytes_done': done, 'size': size,
            'attempts': attempts, 'last_error': error, 'started_at': None, 'finished_at': None}


@pytest.mark.parametrize('count, text', [
    (0, '0 B'), (1023, '1023 B'), (1536, '1.50 KiB'), (300 * 1024, '300.0 KiB'),
    (3 * 1024 ** 2 + 5, '3.00 MiB'), (5 * 1024 ** 5, '5120.0 TiB')])
def test_format_bytes(count, text):
    assert progress.format_bytes(count) == text


@pytest.mark.parametrize('seconds, text', [(0, '0:00'), (65.4, '1:05'), (3725, '1:02:05'),
                                           (-3, '0:00')])
def test_format_duration(seconds, text):
    assert progress.format_duration(seconds) == text


def test_rate_meter_averages_over_its_window_and_restarts_on_a_new_attempt():
    meter = progress.RateMeter(window=5)
    assert meter.rate() is None
    meter.add(0, 0)
    assert meter.rate() is None
    for t in range(1, 11):
        meter.add(t, t * 100 if t < 6 else 500 + (t - 5) * 1000)
    assert meter.rate() == pytest.approx(1000)  # only the last 5 s count
    meter.add(11, 0)
    assert meter.rate() is None


def test_describe_each_state():
    caching = progress.describe(job('caching', done=250, size=1000, attempts=2), rate=50)
    assert caching == ('img caching [#####...............]  25% 250 B / 1000 B 50 B/s '
                       'ETA 0:15 (attempt 2)')
    assert progress.describe(job('queued', attempts=0)) == 'img queued'
    assert progress.describe(job('queued', attempts=1, error='boom')) == (
        'img queued, to retry after attempt 1 failed: boom')
    cached = dict(job('cached', done=1000), started_at=10.0, finished_at=12.5)
    assert progress.describe(cached) == 'img cached, 1000 B in 2.5 s'
    assert progress.describe(job('failed', attempts=3, error='bad data')) == (
        'img failed after 3 attempt(s): bad data')


def test_progress_line_redraws_in_place_on_a_tty():
    stream, clock = TTYStream(), FakeClock()
    line = progress.ProgressLine(stream, clock=clock)
    line.update(job('queued', attempts=1, error='a long reason'))
    line.update(job('queued', attempts=0))
    line.finish('img cached')
    text = stream.getvalue()
    first = '\rimg queued, to retry after attempt 1 failed: a long reason'
    assert text.startswith(first)
    # Each redraw starts at the line's beginning and blanks what the last one left.
    assert '\rimg queued' + ' ' * (len(first) - 1 - len('img queued')) + '\r' in text
    assert text.endswith('\rimg cached' + ' ' * (len('img queued') - len('img cached')) + '\n')
    assert text.count('\n') == 1


def test_progress_line_on_a_tty_stays_within_the_terminal_width():
    stream = TTYStream()  # no real terminal behind it: 80 columns
    line = progress.ProgressLine(stream)
    line.update(job('queued', attempts=1, error='x' * 200))
    assert len(stream.getvalue()) == 1 + 79


def test_progress_line_elsewhere_writes_on_changes_and_every_interval():
    stream, clock = io.StringIO(), FakeClock()
    line = progress.ProgressLine(stream, clock=clock, interval=3)
    for _ in range(10):  # 2 s of polls in one state: one line
        line.update(job('queued', attempts=0))
        clock.sleep(0.2)
    line.update(job('caching', done=100))  # a new state: a line at once
    clock.sleep(1)
    line.update(job('caching', done=200))  # same state within the interval: nothing
    clock.sleep(2)
    line.update(job('caching', done=300))  # the interval has passed
    line.finish('img cached')
    lines = stream.getvalue().splitlines()
    assert [ln.split()[1] for ln in lines] == ['queued', 'caching', 'caching', 'cached']
    assert '300 B / 1000 B' in lines[2] and '66 B/s' in lines[2]
    assert '\r' not in stream.getvalue()


class FakeClient:
    """Answers job() from a script of records per image; None means 404."""

    def __init__(self, scripts, cached=()):
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.cached = list(cached)
        self.polls = 0

    def job(self, image_id):
        self.polls += 1
        script = self.scripts[image_id]
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def list_cache(self):
        return {'cached_images': [{'image_id': i} for i in self.cached], 'queued_images': []}


def _wait(client, ids, timeout=None):
    clock, stream = FakeClock(), io.StringIO()
    failures = cache_commands.wait_for_jobs(client, ids, stream, timeout=timeout, clock=clock,
                                            sleep=clock.sleep)
    return failures, stream.getvalue(), clock


def test_wait_follows_each_job_to_its_end():
    client = FakeClient({
        'a': [job('queued', image_id='a'), job('caching', 500, image_id='a'),
              job('cached', 1000, image_id='a')],
        'b': [job('failed', attempts=1, error='checksum mismatch', image_id='b')],
        'c': [None],  # no record, but cached: a download filled it
        'd': [None],  # no record and not cached: removed meanwhile
        'e': [cache_client.CacheClientError('HTTP 403 Forbidden: no')],
    }, cached=['c'])
    failures, output, clock = _wait(client, ['a', 'b', 'c', 'd', 'e'])
    assert failures == {'b': 'checksum mismatch',
                        'd': 'its caching job is gone (deleted or cleared meanwhile?)',
                        'e': 'HTTP 403 Forbidden: no'}
    assert clock.now == pytest.approx(100.4), 'polled every 0.2 s until a ended'
    assert 'a cached' in output and 'c cached' in output
    assert 'b failed after 1 attempt(s): checksum mismatch' in output


def test_wait_gives_up_at_the_timeout():
    client = FakeClient({'a': [job('queued', attempts=0, image_id='a')],
                         'b': [job('cached', image_id='b')]})
    failures, output, clock = _wait(client, ['a', 'b'], timeout=1)
    assert failures == {'a': 'timed out, still queued after 1 s'}
    assert clock.now == pytest.approx(101.0)
    assert 'b cached' in output, 'later images are still looked at once'


@pytest.mark.parametrize('wait, timeout', [(False, 5.0), (True, 0.0), (True, -1.0)])
def test_queue_refuses_a_timeout_it_cannot_use(wait, timeout):
    args = types.SimpleNamespace(images=['a'], wait=wait, timeout=timeout)
    with pytest.raises(runner.UsageError, match='--timeout needs --wait'):
        cache_commands.queue_images(None, args)


def test_format_table():
    assert runner.format_table(['A', 'Long'], [['xyz', 'a\nb']]).splitlines() == [
        '+-----+------+', '| A   | Long |', '+-----+------+', '| xyz | a b  |',
        '+-----+------+']


def _conf(url=None, token=None):
    return types.SimpleNamespace(url=url, os_auth_token=token)


def test_client_url_and_token_come_from_options_then_environment():
    env = {'GLANCE_CACHE_URL': 'http://a:9292/', 'OS_IMAGE_URL': 'http://b:9292/v2',
           'OS_AUTH_TOKEN': 'env-token'}
    client = runner.make_client(_conf(), env)
    assert (client.url, client.token) == ('http://a:9292', 'env-token')
    client = runner.make_client(_conf('http://c:1/v2.14', 'opt-token'), env)
    assert (client.url, client.token) == ('http://c:1', 'opt-token')
    client = runner.make_client(_conf(), {'OS_IMAGE_URL': 'http://b:9292/v2/'})
    assert (client.url, client.token) == ('http://b:9292', None)
    with pytest.raises(runner.UsageError, match='no node URL'):
        runner.make_client(_conf(), {})
    with pytest.raises(runner.UsageError, match='not an http'):
        runner.make_client(_conf('node:9292'), {})


@pytest.mark.parametrize('body, message', [
    (b'{"error": {"code": 403, "title": "Forbidden", "message": "Policy says no"}}',
     'HTTP 403 Forbidden: Policy says no'),
    (b'{"error": "flat"}', 'HTTP 403 Forbidden: flat'),
    (b'<html>\n<body>Bad   gateway</body></html>', 'HTTP 403 Forbidden: <html> <body>Bad '
                                                    'gateway</body></html>'),
    (b'', 'HTTP 403 Forbidden: (no details)'),
])
def test_error_message(body, message):
    assert cache_client.error_message(403, 'Forbidden', body) == message


# -- --nodes: parsing, outcomes, waiting on several nodes ----------------------------------


@pytest.mark.parametrize('value, names', [
    ('all', 'all'), ('node1', 'node1'), (' node1, node2,,node1 ', 'node1,node2')])
def test_node_names(value, names):
    assert cluster_commands.node_names(value) == names


@pytest.mark.parametrize('value, message', [
    (',', 'expected "all" or a comma-separated list'), ('', 'expected "all"'),
    ('all,node1', 'cannot be combined')])
def test_node_names_refuses(value, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        cluster_commands.node_names(value)


def outcome(node, ok=True, status=202, state='up', message=None, body=None):
    result = {'node': node, 'url': 'http://%s:9292' % node, 'state': state, 'status': status,
              'ok': ok, 'message': message}
    if body is not None:
        result['body'] = body
    return result


DOWN = outcome('n3', ok=False, status=None, state='down',
               message='node is down: no heartbeat for 40 s; not contacted')


def test_outcome_reason():
    assert cluster_commands.outcome_reason(DOWN) == (
        'down: node is down: no heartbeat for 40 s; not contacted')
    assert cluster_commands.outcome_reason(outcome('n2', False, 403, message='Policy says no')) \
        == 'HTTP 403: Policy says no'
    assert cluster_commands.outcome_reason(outcome('n2', False, None, message='no answer')) \
        == 'no answer'


def test_report_outcomes_prints_a_line_per_node(capsys):
    failed = cluster_commands.report_outcomes(
        [outcome('n1'), outcome('n2', False, 404, message='No image'), DOWN], 'did it')
    assert failed == {'n2': 'HTTP 404: No image',
                      'n3': 'down: node is down: no heartbeat for 40 s; not contacted'}
    out, err = capsys.readouterr()
    assert out == 'n1: did it\n'
    assert err.splitlines() == ['n2: FAILED (HTTP 404: No image)',
                                'n3: FAILED (down: node is down: no heartbeat for 40 s; '
                                'not contacted)']


def test_progress_block_redraws_every_line_in_place_on_a_tty():
    stream, clock = TTYStream(), FakeClock()
    block = progress.ProgressBlock(stream, 'Image img on n1, n2:', ['n1', 'n2'], clock=clock)
    block.update('n1', job('queued', attempts=0))
    block.update('n2', job('caching', done=100))
    block.draw()
    clock.sleep(1)
    block.update('n2', job('caching', done=300))
    block.finish('n1', 'n1 cached')
    block.draw()
    assert stream.getvalue() == (
        'Image img on n1, n2:\n'
        '\rn1 queued\x1b[K\n'
        '\rn2 caching [##..................]  10% 100 B / 1000 B\x1b[K\n'
        '\x1b[2A'
        '\rn1 cached\x1b[K\n'
        '\rn2 caching [######..............]  30% 300 B / 1000 B 200 B/s ETA 0:04\x1b[K\n')


def test_progress_block_elsewhere_writes_a_line_per_change():
    stream, clock = io.StringIO(), FakeClock()
    block = progress.ProgressBlock(stream, 'Image img on n1, n2:', ['n1', 'n2'], clock=clock,
                                   interval=3)
    for _ in range(3):
        block.update('n1', job('queued', attempts=0))
        block.update('n2', job('queued', attempts=0))
        block.draw()
        clock.sleep(0.2)
    block.update('n1', job('caching', done=500))
    block.finish('n2', 'n2: timed out')
    block.finish('n1', 'n1 cached')
    block.draw()
    assert stream.getvalue().splitlines() == [
        'Image img on n1, n2:', 'n1 queued', 'n2 queued',
        'n1 caching [##########..........]  50% 500 B / 1000 B', 'n2: timed out', 'n1 cached']


class FakeNodesClient:
    """Answers job_on_nodes() from a script of outcome lists; holders() from a set of URLs."""

    def __init__(self, polls, holders=()):
        self.polls = list(polls)
        self.holder_urls = list(holders)
        self.queued = []
        self.asked = []

    def job_on_nodes(self, image_id, nodes):
        self.asked.append(nodes)
        answer = self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def holders(self, image_id):
        return self.holder_urls

    def queue(self, image_id, nodes=None):
        self.queued.append((image_id, nodes))
        return self.queue_outcomes


def _node_job(node, state, **kw):
    return outcome(node, status=200, body=dict(job(state, **kw), node=node))


def _wait_nodes(client, images, timeout=None):
    clock, stream = FakeClock(), io.StringIO()
    failures = cluster_commands.wait_for_node_jobs(client, images, 'n1,n2,n3,n4,n5', stream,
                                                 timeout=timeout, clock=clock, sleep=clock.sleep)
    return failures, stream.getvalue(), clock


def test_wait_on_nodes_follows_every_node_to_its_end():
    no_job = {'ok': False, 'status': 404, 'message': 'No caching job for image img'}
    client = FakeNodesClient([
        [_node_job('n1', 'queued'), _node_job('n2', 'failed', error='checksum mismatch'),
         dict(outcome('n3'), **no_job), dict(outcome('n4'), **no_job), dict(DOWN, node='n5')],
        [_node_job('n1', 'caching', done=500), dict(outcome('n3'), **no_job),
         dict(outcome('n4'), **no_job)],
        [_node_job('n1', 'cached', done=1000), dict(outcome('n3'), **no_job),
         dict(outcome('n4'), **no_job)],
    ], holders=['http://n3:9292'])
    failures, output, clock = _wait_nodes(client, {'img': ['n1', 'n2', 'n3', 'n4', 'n5']})
    assert failures == {'img': {
        'n2': 'checksum mismatch',
        'n4': 'its caching job is gone (deleted or cleared meanwhile?)',
        'n5': 'down: node is down: no heartbeat for 40 s; not contacted'}}
    assert clock.now == pytest.approx(100.4), 'polled every 0.2 s until n1 ended'
    assert set(client.asked) == {'n1,n2,n3,n4,n5'}
    lines = output.splitlines()
    assert lines[0] == 'Image img on n1, n2, n3, n4, n5:'
    assert 'n2 failed after 1 attempt(s): checksum mismatch' in lines
    assert 'n3 cached, 0 B' in lines, 'no job record, but it holds the image'
    assert 'n4: its caching job is gone (deleted or cleared meanwhile?)' in lines
    assert lines.index('n4: its caching job is gone (deleted or cleared meanwhile?)') > \
        lines.index('n1 caching [##########..........]  50% 500 B / 1000 B'), \
        'a node without a record or holding is looked at twice'


def test_wait_on_nodes_reports_a_node_that_goes_down_or_away_and_a_failed_poll():
    client = FakeNodesClient([[_node_job('n1', 'queued'), _node_job('n3', 'caching')],
                              [_node_job('n1', 'queued'), DOWN],
                              cache_client.CacheClientError('cannot reach http://n0')])
    failures, output, _clock = _wait_nodes(client, {'img': ['n1', 'n2', 'n3']})
    assert failures == {'img': {
        'n2': 'no longer a node of the cluster (forgotten meanwhile?)',
        'n3': 'down: node is down: no heartbeat for 40 s; not contacted',
        'n1': 'cannot reach http://n0'}}
    assert 'n1: cannot reach http://n0' in output.splitlines()


def test_wait_on_nodes_gives_up_at_the_timeout():
    client = FakeNodesClient([[_node_job('n1', 'queued'), _node_job('n2', 'caching', done=9)]])
    failures, output, clock = _wait_nodes(client, {'a': ['n1', 'n2'], 'b': ['n1']}, timeout=1)
    assert failures == {'a': {'n1': 'timed out, still queued after 1 s',
                              'n2': 'timed out, still caching after 1 s'},
                        'b': {'n1': 'timed out, still queued after 1 s'}}
    assert clock.now == pytest.approx(101.0), 'the timeout bounds the whole wait'
    assert 'n2: still caching after 1 s' in output.splitlines()


def _queue_args(**kw):
    return types.SimpleNamespace(**dict(dict(images=['img'], wait=False, timeout=None,
                                             nodes='all'), **kw))


def test_queue_on_nodes_reports_each_node_and_follows_the_accepted_ones(capsys):
    client = FakeNodesClient([[_node_job('n1', 'cached', done=1000)]])
    client.queue_outcomes = [outcome('n1'), outcome('n2', False, 403, message='no'), DOWN]
    status = cache_commands.queue_images(client, _queue_args(wait=True))
    out, err = capsys.readouterr()
    assert status == 1
    assert client.queued == [('img', 'all')]
    assert out.splitlines() == ['n1: queued image img for caching', 'n1: image img is cached']
    assert 'Image img on n1:' in err.splitlines(), 'refused nodes are not followed'
    assert 'glance-cache-manage: image img was not cached on n2: HTTP 403: no' in err
    assert 'glance-cache-manage: image img was not cached on n3: down: node is down' in err


def test_queue_on_nodes_exit_status(capsys):
    client = FakeNodesClient([])
    client.queue_outcomes = [outcome('n1'), outcome('n2')]
    assert cache_commands.queue_images(client, _queue_args(images=['a', 'b', 'a'])) == 0
    assert capsys.readouterr().out.splitlines() == [
        'n1: queued image a for caching', 'n2: queued image a for caching',
        'n1: queued image b for caching', 'n2: queued image b for caching']
    client.queue_outcomes = [outcome('n1'), DOWN]
    assert cache_commands.queue_images(client, _queue_args()) == 1


class FakeCommandClient:
    """Records calls; answers per-node outcomes when asked with ``nodes``."""

    def __init__(self, outcomes=None):
        self.outcomes = outcomes
        self.calls = []

    def delete(self, image_id, nodes=None):
        self.calls.append(('delete', image_id, nodes))
        return self.outcomes if nodes else None

    def clear(self, target, nodes=None):
        self.calls.append(('clear', target, nodes))
        return self.outcomes if nodes else None


def test_delete_and_clear_on_nodes(capsys):
    client = FakeCommandClient([outcome('n1', status=204), DOWN])
    args = types.SimpleNamespace(images=['img'], nodes='n1,n3')
    assert cache_commands.delete_images(client, args) == 1
    assert cache_commands.clear_cache(client, types.SimpleNamespace(target='queue',
                                                                    nodes='n1,n3')) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ['n1: deleted image img from the cache and the queue',
                                'n1: cleared the queue']
    assert err.count('n3: FAILED (down: node is down') == 2
    client.outcomes = [outcome('n1', status=204)]
    assert cache_commands.clear_cache(client, types.SimpleNamespace(target='both',
                                                                    nodes='n1')) == 0
    # Without --nodes, as before: the node at --url only.
    assert cache_commands.delete_images(client, types.SimpleNamespace(images=['img'],
                                                                      nodes=None)) == 0
    assert cache_commands.clear_cache(client, types.SimpleNamespace(target='cache',
                                                                    nodes=None)) == 0
    assert capsys.readouterr().out.splitlines() == [
        'n1: cleared the cache and the queue',
        'Deleted image img from the cache and the queue', 'Cleared the cache']
    assert client.calls[-2:] == [('delete', 'img', None), ('clear', 'cache', None)]


# -- nodes, pins ---------------------------------------------------------------------------


def cluster_node(**kw):
    node = {'name': 'n1', 'url': 'http://n1:9292', 'state': 'up', 'started_at': 1.0,
            'last_heartbeat': 2.0, 'heartbeat_age': 0.42, 'cached_images': 3,
            'cached_bytes': 3 * 1024 ** 2, 'max_size': 10 * 1024 ** 3, 'queued_jobs': 2,
            'failed_jobs': 1,
            'running_jobs': [{'image_id': 'a', 'size': 512 * 1024 ** 2,
                              'bytes_done': 231 * 1024 ** 2}],
            'pinned_images': 1, 'pinned_bytes': 1024, 'pinned_max_size': 5 * 1024 ** 3}
    node.update(kw)
    return node


def test_node_row():
    assert cluster_commands.node_row(cluster_node()) == [
        'n1', 'http://n1:9292', 'up', '0.4 s ago', '3, 3.00 MiB of 10.0 GiB', '2', '1',
        '1 (45% of 512.0 MiB)', '1, 1.00 KiB of 5.00 GiB']
    idle = cluster_commands.node_row(cluster_node(
        state='down', heartbeat_age=3725.0, running_jobs=[], cached_images=0, cached_bytes=0,
        max_size=None, pinned_images=0, pinned_bytes=0))
    assert idle[2:5] == ['down', '1:02:05 ago', '0, 0 B']
    assert idle[7:] == ['0', '0, 0 B of 5.00 GiB']
    two = cluster_commands.node_row(cluster_node(running_jobs=[
        {'image_id': 'a', 'size': 1000, 'bytes_done': 500},
        {'image_id': 'b', 'size': None, 'bytes_done': 2048}]))
    assert two[7] == '2 (50% of 1000 B, 2.00 KiB)'


class FakeClusterClient:
    def __init__(self, pin=None, created=True):
        self.pin_answer = (created, pin)
        self.calls = []

    def pin(self, image_id, nodes=None):
        self.calls.append(('pin', image_id, nodes))
        return self.pin_answer

    def unpin(self, image_id, nodes=None):
        self.calls.append(('unpin', image_id, nodes))

    def forget_node(self, name):
        self.calls.append(('forget', name))

    def cluster(self):
        return [cluster_node(), cluster_node(name='n2', url='http://n2:9292')]

    def list_pins(self):
        return [{'image_id': 'img', 'size': 2048, 'nodes': ['all'], 'created_at': 1.0,
                 'created_by': 'admin'}]


def test_pin_prints_the_pin_and_each_node(capsys):
    pin = {'image_id': 'img', 'size': 2048, 'nodes': ['all'], 'created_at': 0.0,
           'created_by': 'admin', 'caching': [outcome('n1'), DOWN]}
    client = FakeClusterClient(pin)
    assert cluster_commands.pin_image(client, types.SimpleNamespace(image='img', nodes=None)) == 0
    assert capsys.readouterr().out.splitlines() == [
        'Pinned image img (2.00 KiB) to all nodes', 'n1: queued image img for caching',
        'n3: not asked now (down: node is down: no heartbeat for 40 s; not contacted); '
        'it caches the image at its next heartbeat']
    client.pin_answer = (False, dict(pin, nodes=['n1', 'n2'], caching=[]))
    assert cluster_commands.pin_image(client, types.SimpleNamespace(image='img', nodes='n2')) == 0
    assert capsys.readouterr().out.splitlines() == [
        'Already pinned: image img (2.00 KiB) to node(s) n1, n2']
    assert client.calls == [('pin', 'img', None), ('pin', 'img', 'n2')]


def test_unpin_forget_nodes_and_pins_print(capsys):
    client = FakeClusterClient()
    assert cluster_commands.unpin_image(client, types.SimpleNamespace(image='img',
                                                                    nodes=None)) == 0
    assert cluster_commands.unpin_image(client, types.SimpleNamespace(image='img',
                                                                    nodes='n1,n2')) == 0
    assert cluster_commands.unpin_image(client, types.SimpleNamespace(image='img',
                                                                    nodes='all')) == 0
    assert cluster_commands.show_nodes(client, types.SimpleNamespace(forget='n9')) == 0
    assert client.calls == [('unpin', 'img', None), ('unpin', 'img', 'n1,n2'),
                            ('unpin', 'img', 'all'), ('forget', 'n9')]
    assert capsys.readouterr().out.splitlines() == [
        'Unpinned image img', 'Unpinned image img from node(s) n1, n2',
        'Unpinned image img from all nodes', 'Forgot node n9']
    assert cluster_commands.show_nodes(client, types.SimpleNamespace(forget=None)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split('|')[1:-1] == [
        ' Name ', ' URL            ', ' State ', ' Last heartbeat ', ' Cached                  ',
        ' Queued ', ' Failed ', ' Running              ', ' Pinned                  ']
    assert [ln.split('|')[1].strip() for ln in lines[3:5]] == ['n1', 'n2']
    assert cluster_commands.list_pins(client, None) == 0
    assert capsys.readouterr().out.splitlines()[3] == (
        '| img      | 2048 | all   | 1970-01-01T00:00:01Z | admin      |')


# -- the client's requests -----------------------------------------------------------------


class FakeAnswer:
    def __init__(self, status, body):
        self.status, self.body = status, body

    def read(self):
        return self.body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _fake_urlopen(monkeypatch, status, body):
    sent = []

    def urlopen(req, timeout):
        sent.append(req)
        return FakeAnswer(status, body)

    monkeypatch.setattr(cache_client.urllib.request, 'urlopen', urlopen)
    return sent


def test_client_sends_nodes_and_reads_the_outcomes(monkeypatch):
    outcomes = [outcome('n1'), DOWN]
    sent = _fake_urlopen(monkeypatch, 207, json.dumps({'nodes': outcomes}).encode())
    client = cache_client.CacheClient('http://n1:9292', 'tok')
    assert client.queue('a/b', nodes='n1,n3') == outcomes
    assert client.clear('queue', nodes='all') == outcomes
    assert [(r.get_method(), r.full_url) for r in sent] == [
        ('PUT', 'http://n1:9292/v2/cache/a%2Fb?nodes=n1,n3'),
        ('DELETE', 'http://n1:9292/v2/cache?nodes=all')]
    assert sent[1].get_header('X-image-cache-clear-target') == 'queue'


def test_client_refuses_an_answer_without_outcomes(monkeypatch):
    _fake_urlopen(monkeypatch, 202, b'')
    with pytest.raises(cache_client.CacheClientError, match='did not answer per node'):
        cache_client.CacheClient('http://n1:9292').queue('img', nodes='n1')


@pytest.mark.parametrize('status, created', [(201, True), (200, False)])
def test_client_pin_says_whether_it_was_new(monkeypatch, status, created):
    sent = _fake_urlopen(monkeypatch, status, b'{"image_id": "img", "nodes": ["all"]}')
    client = cache_client.CacheClient('http://n1:9292')
    assert client.pin('img') == (created, {'image_id': 'img', 'nodes': ['all']})
    assert sent[0].full_url == 'http://n1:9292/v2/cache/pins/img'
