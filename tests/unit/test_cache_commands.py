"""Units of glance-cache-manage's cache commands: progress, waiting, tables, client set-up."""

import io
import types

import pytest

from glance_cache.cmd import cache_client, cache_commands, progress


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
    with pytest.raises(cache_commands.UsageError, match='--timeout needs --wait'):
        cache_commands.queue_images(None, args)


def test_format_table():
    assert cache_commands.format_table(['A', 'Long'], [['xyz', 'a\nb']]).splitlines() == [
        '+-----+------+', '| A   | Long |', '+-----+------+', '| xyz | a b  |',
        '+-----+------+']


def _conf(url=None, token=None):
    return types.SimpleNamespace(url=url, os_auth_token=token)


def test_client_url_and_token_come_from_options_then_environment():
    env = {'GLANCE_CACHE_URL': 'http://a:9292/', 'OS_IMAGE_URL': 'http://b:9292/v2',
           'OS_AUTH_TOKEN': 'env-token'}
    client = cache_commands.make_client(_conf(), env)
    assert (client.url, client.token) == ('http://a:9292', 'env-token')
    client = cache_commands.make_client(_conf('http://c:1/v2.14', 'opt-token'), env)
    assert (client.url, client.token) == ('http://c:1', 'opt-token')
    client = cache_commands.make_client(_conf(), {'OS_IMAGE_URL': 'http://b:9292/v2/'})
    assert (client.url, client.token) == ('http://b:9292', None)
    with pytest.raises(cache_commands.UsageError, match='no node URL'):
        cache_commands.make_client(_conf(), {})
    with pytest.raises(cache_commands.UsageError, match='not an http'):
        cache_commands.make_client(_conf('node:9292'), {})


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
