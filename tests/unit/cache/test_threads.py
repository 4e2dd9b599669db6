"""FillThreads: fills run in named threads, reused while they wait for the next fill."""

import doctest
import logging
import threading
import uuid

from glance_cache.cache import threads
from tests import helpers
from tests.unit.cache.conftest import image_for

TIMEOUT = 10


def _call_in(pool, name, target=lambda: None):
    """Run ``target`` in ``pool``; the thread that ran it."""
    ran = {}
    done = threading.Event()

    def task():
        ran['thread'] = threading.current_thread()
        ran['name'] = ran['thread'].name
        try:
            target()
        finally:
            done.set()

    pool.run(name, task)
    assert done.wait(TIMEOUT)
    return ran


def test_doctests():
    assert doctest.testmod(threads).failed == 0


def test_a_finished_thread_runs_the_next_fill_under_its_name():
    pool = threads.FillThreads()
    first = _call_in(pool, 'fill-a')
    helpers.wait_for(lambda: pool.idle == 1, 'the thread to wait for the next fill')
    second = _call_in(pool, 'fill-b')
    assert first['thread'] is second['thread']
    assert (first['name'], second['name']) == ('fill-a', 'fill-b')
    assert pool.started == 1
    assert first['thread'].daemon


def test_fills_at_once_get_threads_of_their_own():
    pool = threads.FillThreads()
    gate = threading.Event()
    running = threading.Semaphore(0)
    seen = []

    def task():
        seen.append(threading.current_thread())
        running.release()
        gate.wait(TIMEOUT)

    for i in range(3):
        pool.run('fill-%d' % i, task)
    for _ in range(3):
        assert running.acquire(timeout=TIMEOUT)
    gate.set()
    assert len(set(seen)) == 3 and pool.started == 3
    helpers.wait_for(lambda: pool.idle == 3, 'the three threads to wait for fills')
    # Three idle threads: the next fills start none.
    for i in range(3):
        _call_in(pool, 'fill-again-%d' % i)
    assert pool.started == 3


def test_a_thread_idle_too_long_ends():
    pool = threads.FillThreads(idle_seconds=0.05)
    thread = _call_in(pool, 'fill-short')['thread']
    thread.join(TIMEOUT)
    assert not thread.is_alive() and pool.idle == 0
    # The next fill starts a thread again.
    assert _call_in(pool, 'fill-later')['thread'] is not thread
    assert pool.started == 2


def test_a_fill_that_raises_is_logged_and_the_thread_goes_on(caplog):
    pool = threads.FillThreads()

    def broken():
        raise RuntimeError('boom')

    with caplog.at_level(logging.ERROR, logger=threads.__name__):
        first = _call_in(pool, 'fill-broken', broken)
        helpers.wait_for(lambda: pool.idle == 1, 'the thread to survive the error')
    assert 'fill-broken' in caplog.text and 'boom' in caplog.text
    assert _call_in(pool, 'fill-next')['thread'] is first['thread']


def test_the_cache_runs_its_fills_in_reused_threads(cache_factory):
    cache = cache_factory()
    names, expected = [], []
    for _ in range(3):
        data = b'x' * 1000
        image = image_for(data, str(uuid.uuid4()))
        job, started = cache.begin_fill(image)
        assert started
        expected.append('fill-%s' % image['id'])

        def source(data=data):
            names.append(threading.current_thread().name)
            yield data

        cache.run_fill(job, source)
        assert job.wait(TIMEOUT) == job.DONE
        assert cache.get(image['id']) is not None
        helpers.wait_for(lambda: cache._fill_threads.idle == 1, 'the fill thread to be idle')
    assert cache._fill_threads.started == 1
    assert names == expected, 'each fill names its thread after its image'
