"""FillCpus and Confinement: background fills keep off the CPUs left to requests."""

import os
import subprocess
import threading
import uuid

import pytest

from glance_cache.cache import cpus, hashing
from tests import helpers
from tests.unit.cache.conftest import image_for

USABLE = frozenset(os.sched_getaffinity(0))
needs_two_cpus = pytest.mark.skipif(len(USABLE) < 2, reason='needs two usable CPUs')


def _affinity_in_thread(confinement, gate=None, seen=None):
    """Run a thread inside ``confinement``; return (thread, its affinities)."""
    seen = seen if seen is not None else {}

    def body():
        seen['tid'] = threading.get_native_id()
        seen['inside'] = os.sched_getaffinity(0)
        if gate is not None:
            gate.wait(10)
            seen['after_gate'] = os.sched_getaffinity(0)

    thread = threading.Thread(target=confinement.run, args=(body,))
    thread.start()
    return thread, seen


def test_no_reserve_means_no_confinement():
    fill_cpus = cpus.FillCpus(0)
    assert fill_cpus.confinement() is cpus.UNCONFINED
    assert fill_cpus.describe() == 'on every CPU'


@needs_two_cpus
@pytest.mark.parametrize('reserve', [1, len(USABLE) - 1, len(USABLE), 100])
def test_fills_get_the_highest_cpus_and_one_at_least(reserve):
    fill_cpus = cpus.FillCpus(reserve)
    kept = min(reserve, len(USABLE) - 1)
    assert fill_cpus.for_fills == frozenset(sorted(USABLE)[kept:])
    assert fill_cpus.usable == USABLE
    assert 'leaving' in fill_cpus.describe()


@needs_two_cpus
def test_a_thread_is_confined_while_it_runs_and_widened_after():
    fill_cpus = cpus.FillCpus(1)
    thread, seen = _affinity_in_thread(fill_cpus.confinement())
    thread.join()
    assert seen['inside'] == fill_cpus.for_fills
    # The caller's own thread was never touched.
    assert os.sched_getaffinity(0) == USABLE


@needs_two_cpus
def test_release_widens_running_threads_and_processes():
    fill_cpus = cpus.FillCpus(1)
    confinement = fill_cpus.confinement()
    gate = threading.Event()
    thread, seen = _affinity_in_thread(confinement, gate)
    child = subprocess.Popen(['sleep', '30'])
    try:
        confinement.adopt(child.pid)
        assert os.sched_getaffinity(child.pid) == fill_cpus.for_fills
        confinement.release()
        assert os.sched_getaffinity(child.pid) == USABLE
        gate.set()
        thread.join()
        assert seen['inside'] == fill_cpus.for_fills and seen['after_gate'] == USABLE
        # After a release nothing more is confined.
        later, seen_later = _affinity_in_thread(confinement)
        later.join()
        assert seen_later['inside'] == USABLE
    finally:
        child.kill()
        child.wait()


@needs_two_cpus
def test_a_disowned_process_is_left_alone():
    confinement = cpus.FillCpus(1).confinement()
    child = subprocess.Popen(['sleep', '30'])
    try:
        confinement.adopt(child.pid)
        confinement.disown(child.pid)
        confinement.release()
        assert os.sched_getaffinity(child.pid) != USABLE
    finally:
        child.kill()
        child.wait()


@needs_two_cpus
def test_a_background_fill_runs_confined_until_a_client_follows_it(cache_factory):
    cache = cache_factory()
    fill_cpus = cpus.FillCpus(1)
    data = os.urandom(hashing.INLINE_HASH_LIMIT + 1)
    image = image_for(data, str(uuid.uuid4()))
    job, _ = cache.begin_fill(image, fill_cpus.confinement())
    half = len(data) // 2
    reached, go_on = threading.Event(), threading.Event()
    seen = {}

    def source():
        yield data[:half]
        seen['fill'] = os.sched_getaffinity(0)
        seen['digests'] = _digest_affinities()
        reached.set()
        go_on.wait(10)
        seen['fill_followed'] = os.sched_getaffinity(0)
        seen['digests_followed'] = _digest_affinities()
        yield data[half:]

    runner = threading.Thread(target=job.run, args=(source,))
    runner.start()
    assert reached.wait(10)
    follower = job.follow(1 << 20)
    go_on.set()
    body = b''.join(follower)
    runner.join()
    assert job.state == job.DONE, job.error
    assert body == data
    assert seen['fill'] == fill_cpus.for_fills
    assert seen['digests'] == [fill_cpus.for_fills] * 2
    assert seen['fill_followed'] == USABLE
    assert seen['digests_followed'] == [USABLE] * 2


def _digest_affinities():
    return [os.sched_getaffinity(pid) for pid in helpers.digest_processes(os.getpid())]
