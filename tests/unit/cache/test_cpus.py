"""FillCpus and Confinement: background fills keep off the CPUs left to requests."""

import json
import os
import subprocess
import sys
import threading
import uuid

import pytest

from glance_cache.cache import cpus, hashing
from tests import helpers
from tests.unit.cache.conftest import image_for

USABLE = frozenset(os.sched_getaffinity(0))
needs_two_cpus = pytest.mark.skipif(len(USABLE) < 2, reason='needs two usable CPUs')
SHORT = cpus.MOVE_REQUESTS_FROM - 1
LONG = cpus.MOVE_REQUESTS_FROM


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
    assert fill_cpus.confinement(LONG) is cpus.UNCONFINED
    assert fill_cpus.describe() == 'on every CPU'


@needs_two_cpus
@pytest.mark.parametrize('reserve', [1, len(USABLE) - 1, len(USABLE), 100])
def test_fills_get_the_highest_cpus_and_one_at_least(reserve):
    fill_cpus = cpus.FillCpus(reserve)
    kept = min(reserve, len(USABLE) - 1)
    assert fill_cpus.for_fills == frozenset(sorted(USABLE)[kept:])
    assert fill_cpus.usable == USABLE
    requests = ','.join(str(cpu) for cpu in sorted(USABLE - fill_cpus.for_fills))
    assert fill_cpus.describe().endswith(
        'leaving %s to requests; while %d fill(s) of 32 MiB or more run, the other threads '
        'keep to %s' % (requests, -(-len(fill_cpus.for_fills) // cpus.CPUS_PER_FILL), requests))


@needs_two_cpus
def test_a_thread_is_confined_while_it_runs_and_widened_after():
    fill_cpus = cpus.FillCpus(1)
    thread, seen = _affinity_in_thread(fill_cpus.confinement(SHORT))
    thread.join()
    assert seen['inside'] == fill_cpus.for_fills
    # The caller's own thread was never touched.
    assert os.sched_getaffinity(0) == USABLE


@needs_two_cpus
def test_release_widens_running_threads_and_processes():
    fill_cpus = cpus.FillCpus(1)
    confinement = fill_cpus.confinement(SHORT)
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
    confinement = cpus.FillCpus(1).confinement(SHORT)
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
    job, _ = cache.begin_fill(image, fill_cpus.confinement(len(data)))
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


class _Parked:
    """A thread of this process waiting until ``end()``: inside ``confinement``
    (a fill's thread), or inside none (as a request thread is)."""

    def __init__(self, confinement=None):
        self.confinement = confinement
        self.after = None
        self._inside, self._end = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._body)
        self._thread.start()
        assert self._inside.wait(10)

    def _body(self):
        self.tid = threading.get_native_id()
        if self.confinement is not None:
            self.confinement.enter()
        self._inside.set()
        self._end.wait(30)
        if self.confinement is not None:
            self.confinement.leave()
        self.after = os.sched_getaffinity(0)

    def cpus(self):
        return os.sched_getaffinity(self.tid)

    def end(self):
        self._end.set()
        self._thread.join()


@pytest.fixture
def bystander():
    thread = _Parked()
    yield thread
    thread.end()
    assert os.sched_getaffinity(0) == USABLE, 'a test left this thread moved'


@needs_two_cpus
def test_a_long_fill_keeps_the_other_threads_off_its_cpus_while_it_runs(bystander):
    fill_cpus = cpus.FillCpus(1)
    requests_cpus = USABLE - fill_cpus.for_fills
    fill = _Parked(fill_cpus.confinement(LONG))
    try:
        assert fill.cpus() == fill_cpus.for_fills
        assert bystander.cpus() == requests_cpus
        assert os.sched_getaffinity(0) == requests_cpus
        # A thread started meanwhile inherits that from the one starting it.
        late = _Parked()
        assert late.cpus() == requests_cpus
    finally:
        fill.end()
    try:
        assert bystander.cpus() == USABLE
        assert late.cpus() == USABLE
        assert os.sched_getaffinity(0) == USABLE
    finally:
        late.end()


@needs_two_cpus
@pytest.mark.parametrize('size', [SHORT, 0])
def test_a_short_fill_leaves_the_other_threads_alone(bystander, size):
    fill_cpus = cpus.FillCpus(1)
    fill = _Parked(fill_cpus.confinement(size))
    try:
        assert fill.cpus() == fill_cpus.for_fills
        assert bystander.cpus() == USABLE
    finally:
        fill.end()
    assert bystander.cpus() == USABLE


@needs_two_cpus
def test_a_fill_of_unknown_size_counts_as_long(bystander):
    fill = _Parked(cpus.FillCpus(1).confinement(None))
    try:
        assert bystander.cpus() != USABLE
    finally:
        fill.end()
    assert bystander.cpus() == USABLE


@needs_two_cpus
def test_other_threads_stay_moved_until_the_last_long_fill_ends(bystander):
    fill_cpus = cpus.FillCpus(1)
    requests_cpus = USABLE - fill_cpus.for_fills
    short = _Parked(fill_cpus.confinement(SHORT))
    first = _Parked(fill_cpus.confinement(LONG))
    second = _Parked(fill_cpus.confinement(LONG))
    try:
        # A fill's thread is no "other" thread: the short fill stays on its CPUs.
        assert short.cpus() == fill_cpus.for_fills
        first.end()
        assert bystander.cpus() == requests_cpus
        # A fill thread that ends while a long fill runs joins the others.
        short.end()
        assert short.after == requests_cpus
        assert second.cpus() == fill_cpus.for_fills
    finally:
        short.end()
        first.end()
        second.end()
    assert bystander.cpus() == USABLE


@needs_two_cpus
def test_other_threads_move_only_while_the_long_fills_can_keep_every_fill_cpu_busy(
        bystander, monkeypatch):
    # As on a node with twice as many fill CPUs as one fill keeps busy.
    monkeypatch.setattr(cpus, 'CPUS_PER_FILL', 0.5)
    fill_cpus = cpus.FillCpus(1)
    first = _Parked(fill_cpus.confinement(LONG))
    second = None
    try:
        assert first.cpus() == fill_cpus.for_fills
        assert bystander.cpus() == USABLE
        # Two threads of one fill are still one fill.
        helper = _Parked(first.confinement)
        assert bystander.cpus() == USABLE
        helper.end()
        second = _Parked(fill_cpus.confinement(LONG))
        assert bystander.cpus() == USABLE - fill_cpus.for_fills
        first.end()
        assert bystander.cpus() == USABLE
        assert first.after == USABLE
    finally:
        first.end()
        if second is not None:
            second.end()
    assert bystander.cpus() == USABLE


@needs_two_cpus
def test_releasing_a_long_fill_gives_the_other_threads_every_cpu_back(bystander):
    fill_cpus = cpus.FillCpus(1)
    fill = _Parked(fill_cpus.confinement(LONG))
    try:
        assert bystander.cpus() != USABLE
        fill.confinement.release()
        assert bystander.cpus() == USABLE
        assert fill.cpus() == USABLE
    finally:
        fill.end()
    assert bystander.cpus() == USABLE
    assert fill.after == USABLE


_SIBLINGS = ('import json, sys; from glance_cache.cache import cpus; '
             'print(json.dumps(cpus._sibling_processes()))')


def _siblings_seen_by_a_child(server_pid):
    env = dict(os.environ, **{cpus.SERVER_PID_ENV: str(server_pid)})
    out = subprocess.run([sys.executable, '-c', _SIBLINGS], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_the_other_server_processes_are_the_other_children_of_the_named_process():
    others = [subprocess.Popen(['sleep', '30']) for _ in range(2)]
    try:
        # Every other child of this process (the test's run may have more).
        seen = set(_siblings_seen_by_a_child(os.getpid()))
        assert {p.pid for p in others} <= seen
        # Named a process that did not start it: it has no siblings to move.
        assert _siblings_seen_by_a_child(others[0].pid) == []
        assert _siblings_seen_by_a_child('not a pid') == []
    finally:
        for p in others:
            p.kill()
            p.wait()
