"""The caching worker's drain loop keeps to BurstHold: a real worker, queue
and cache, with the fill itself left out (each job is recorded and marked
cached when the worker takes it)."""

import threading
import time
import uuid

import pytest

from glance_cache import cache as cache_module
from glance_cache.cache import queue as job_queue
from glance_cache.cache import worker as worker_module
from tests import helpers
from tests.unit.cache.conftest import make_conf

# Longer than the module's 20 ms so that a slow machine cannot make a pause.
GAP = 0.5


class _RecordingWorker(worker_module.CacheWorker):
    """Notes when each job was taken, then marks it cached; a job whose
    image id is in ``blocked`` is held until its event is set."""

    def __init__(self, *args):
        super().__init__(*args)
        self.taken = {}
        self.blocked = {}

    def _process(self, record):
        image_id = record['image_id']
        self.taken[image_id] = time.monotonic()
        if image_id in self.blocked:
            self.blocked[image_id].wait(30)
        self._cached(record, record['size'])


@pytest.fixture
def start_worker(tmp_path):
    made = []

    def start(burst_max_hold):
        conf = make_conf(tmp_path / 'cache', burst_max_hold=burst_max_hold)
        cache = cache_module.ImageCache(conf)
        jobs = job_queue.JobQueue(cache.dir, 'node-1')
        worker = _RecordingWorker(conf, cache, jobs, None, None)
        assert worker.burst.max_hold == burst_max_hold
        worker.burst.gap = GAP
        made.append((worker, jobs, cache))
        worker.start()
        assert worker.is_drainer
        return worker, jobs

    yield start
    for worker, jobs, cache in made:
        worker.stop()
        jobs.close()
        cache.close()


def _taken(worker, *image_ids):
    return helpers.wait_for(
        lambda: all(i in worker.taken for i in image_ids) and [worker.taken[i] for i in image_ids],
        'the worker to take %s' % (image_ids,), timeout=30, interval=0.01)


def test_a_burst_waits_for_a_pause_and_a_lone_job_does_not(start_worker):
    worker, jobs = start_worker(30)
    first, second, third, lone = (str(uuid.uuid4()) for _ in range(4))

    release = worker.blocked[first] = threading.Event()
    queued = time.monotonic()
    jobs.enqueue(first, 10)
    assert _taken(worker, first)[0] - queued < GAP

    # Two more while the worker is busy with the first: neither starts before
    # a pause of GAP after the last of them.
    jobs.enqueue(second, 10)
    before_last = time.monotonic()
    jobs.enqueue(third, 10)
    release.set()
    assert min(_taken(worker, second, third)) >= before_last + GAP

    # Once the queue is empty, a new job is lone again.
    helpers.wait_for(lambda: jobs.get(third)['state'] == job_queue.CACHED,
                     'the third job to be cached', interval=0.01)
    helpers.wait_for(lambda: worker.burst.delay(time.monotonic()) == 0 and not jobs.pending_ids(),
                     'the queue to be empty', interval=0.01)
    queued = time.monotonic()
    jobs.enqueue(lone, 10)
    assert _taken(worker, lone)[0] - queued < GAP


def test_a_max_hold_of_zero_starts_every_job_at_once(start_worker):
    worker, jobs = start_worker(0)
    first, *rest = (str(uuid.uuid4()) for _ in range(3))
    release = worker.blocked[first] = threading.Event()
    jobs.enqueue(first, 10)
    _taken(worker, first)
    for image_id in rest:
        jobs.enqueue(image_id, 10)
    released = time.monotonic()
    release.set()
    assert max(_taken(worker, *rest)) - released < GAP
