"""JobQueue: the durable per-node queue, as the drainer and the other processes see it.

A second JobQueue over the same directory stands for another server process
of the node: it shares the files and the lock, not the memory.
"""

import contextlib
import fcntl
import json
import multiprocessing
import os
import random
import threading
import time
import uuid

import pytest

from glance_cache.cache import queue as job_queue
from tests.unit.cache.conftest import deleted_files_open, held_open


def new_id():
    return str(uuid.uuid4())


@pytest.fixture
def jobs(tmp_path):
    q = job_queue.JobQueue(str(tmp_path), 'n1')
    yield q
    q.close()


@pytest.fixture
def other(tmp_path):
    q = job_queue.JobQueue(str(tmp_path), 'n1')
    yield q
    q.close()


def drain(jobs, now=None):
    claimed = []
    while True:
        record, _ = jobs.claim(now)
        if record is None:
            return claimed
        claimed.append(record['image_id'])


def test_claims_in_the_order_queued_and_never_twice(jobs):
    image_ids = [new_id() for _ in range(50)]
    for image_id in image_ids:
        jobs.enqueue(image_id, 10)
    first, _ = jobs.claim()
    assert first['image_id'] == image_ids[0]
    assert first['state'] == job_queue.CACHING and first['attempts'] == 1
    assert jobs.get(image_ids[0])['state'] == job_queue.CACHING
    assert drain(jobs) == image_ids[1:]


def test_a_repeated_enqueue_adds_nothing(jobs):
    image_id = new_id()
    record, added = jobs.enqueue(image_id, 10)
    again, added_again = jobs.enqueue(image_id, 10)
    assert added and not added_again
    assert again['queued_at'] == record['queued_at']
    assert drain(jobs) == [image_id]


def test_a_new_job_is_announced_before_the_drainer_is_woken_and_only_then(jobs):
    """So that the queuing log line comes before any line of the drainer's."""
    events = []
    jobs.local_wakeup = lambda: events.append('woken')
    image_id = new_id()
    jobs.enqueue(image_id, 10, announce=lambda: events.append('announced'))
    assert events == ['announced', 'woken']
    jobs.enqueue(image_id, 10, announce=lambda: events.append('announced again'))
    assert events == ['announced', 'woken']


def test_records_of_another_process_are_claimed_once_it_says_so(jobs, other, monkeypatch):
    monkeypatch.setattr(job_queue, 'LIST_INTERVAL', 3600.0)
    mine = new_id()
    jobs.enqueue(mine, 1)
    assert drain(jobs) == [mine]       # the drainer's first claim listed queue/
    theirs = new_id()
    other.enqueue(theirs, 1)           # its datagram is what mark_stale stands for
    assert drain(jobs) == []
    jobs.mark_stale()
    assert drain(jobs) == [theirs]


def test_records_of_another_process_are_found_even_if_the_word_is_lost(jobs, other,
                                                                      monkeypatch):
    monkeypatch.setattr(job_queue, 'LIST_INTERVAL', 3600.0)
    jobs.enqueue(new_id(), 1)
    drain(jobs)
    theirs = new_id()
    other.enqueue(theirs, 1)
    assert drain(jobs) == []
    monkeypatch.setattr(job_queue, 'LIST_INTERVAL', 0.0)   # as if the interval had passed
    assert drain(jobs) == [theirs]


def test_a_record_removed_by_another_process_is_skipped(jobs, other):
    image_ids = [new_id() for _ in range(3)]
    for image_id in image_ids:
        jobs.enqueue(image_id, 1)
    assert jobs.claim()[0]['image_id'] == image_ids[0]
    assert other.remove(image_ids[1])
    assert drain(jobs) == [image_ids[2]]


def test_a_job_queued_again_keeps_one_place(jobs):
    a, b = new_id(), new_id()
    jobs.enqueue(a, 1)
    jobs.enqueue(b, 1)
    assert jobs.claim()[0]['image_id'] == a
    # A retry puts the record back as queued, due now, with its queued_at.
    jobs.update(a, state=job_queue.QUEUED)
    assert drain(jobs) == [a, b]


def test_a_retry_waits_until_it_is_due_and_the_rest_go_first(jobs):
    a, b = new_id(), new_id()
    jobs.enqueue(a, 1)
    jobs.enqueue(b, 1)
    record, _ = jobs.claim(now=1000.0)
    assert record['image_id'] == a
    jobs.update(a, state=job_queue.QUEUED, next_attempt_at=2000.0)
    record, next_due = jobs.claim(now=1500.0)
    assert record['image_id'] == b and next_due == 2000.0
    assert jobs.claim(now=1600.0) == (None, 2000.0)
    record, _ = jobs.claim(now=2000.0)
    assert record['image_id'] == a and record['attempts'] == 2


def test_a_new_drainer_resumes_what_the_last_one_was_caching(jobs, tmp_path):
    image_id = new_id()
    jobs.enqueue(image_id, 1)
    jobs.claim()
    successor = job_queue.JobQueue(str(tmp_path), 'n1')
    try:
        successor.requeue_caching()
        record = successor.get(image_id)
        assert record['state'] == job_queue.QUEUED and record['attempts'] == 0
        assert drain(successor) == [image_id]
    finally:
        successor.close()


def test_clear_keeps_what_it_is_told_to(jobs):
    keep, drop, done = new_id(), new_id(), new_id()
    for image_id in (keep, drop, done):
        jobs.enqueue(image_id, 1)
    jobs.update(done, state=job_queue.CACHED)
    removed = jobs.clear((job_queue.QUEUED,), keep={keep})
    assert removed == [drop]
    assert jobs.get(done)['state'] == job_queue.CACHED
    assert drain(jobs) == [keep]


def test_pending_ids_lists_only_canonical_names(jobs):
    image_id = new_id()
    jobs.enqueue(image_id, 1)
    for stray in ('notes.txt', image_id.upper(), image_id + '.tmp', '.lock'):
        open(os.path.join(jobs.dir, stray), 'w').close()
    assert jobs.pending_ids() == [image_id]


def test_a_record_written_aside_takes_another_name_when_its_own_is_taken(jobs, monkeypatch):
    """A leftover of a crashed writer (or another writer's draw) is never written over."""
    image_id = new_id()
    path = os.path.join(jobs.dir, image_id)
    taken = '%s.%08x%s' % (path, 0xabc, job_queue.TMP_SUFFIX)
    with open(taken, 'w') as f:
        f.write('left by a crash')
    draws = iter([0xabc, 0xabc, 0xdef])
    monkeypatch.setattr(job_queue.random, 'getrandbits', lambda bits: next(draws))
    record, added = jobs.enqueue(image_id, 10)
    assert added and next(draws, None) is None
    with open(taken) as f:
        assert f.read() == 'left by a crash'
    assert jobs.get(image_id)['state'] == job_queue.QUEUED
    # The name drawn last was only the record's way into place.
    assert not os.path.exists('%s.%08x%s' % (path, 0xdef, job_queue.TMP_SUFFIX))


def test_record_paths_are_built_from_image_ids_only(jobs):
    for bad in ('../x', '', 'a' * 36, '/etc/passwd'):
        with pytest.raises(ValueError):
            jobs.get(bad)


def _hold_lock(directory, held, release):
    q = job_queue.JobQueue(directory, 'n1')
    with q.locked():
        held.set()
        release.wait(10)


@contextlib.contextmanager
def _lock_held_by_another_process(directory):
    ctx = multiprocessing.get_context('spawn')
    held, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold_lock, args=(str(directory), held, release))
    child.start()
    try:
        assert held.wait(10)
        yield
    finally:
        release.set()
        child.join(10)
    assert child.exitcode == 0


def test_the_lock_excludes_other_processes(jobs, tmp_path):
    with jobs.locked():   # this process has its lock descriptor open already
        pass
    with _lock_held_by_another_process(tmp_path):
        probe = os.open(os.path.join(jobs.dir, '.lock'), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(probe)
    with jobs.locked():   # and is free again once the child let go
        pass


def test_queuing_takes_no_lock(jobs, tmp_path):
    # While another process holds the lock (the drainer committing a fill),
    # a PUT still queues at once.
    image_id = new_id()
    with _lock_held_by_another_process(tmp_path):
        outcome = []
        putter = threading.Thread(target=lambda: outcome.append(jobs.enqueue(image_id, 1)))
        putter.start()
        putter.join(5)
        assert not putter.is_alive(), 'enqueue waited for the lock'
        assert outcome[0][1] is True
    assert drain(jobs) == [image_id]


def test_concurrent_enqueues_of_one_image_add_it_once(jobs, other):
    image_id = new_id()
    start = threading.Barrier(16)
    added = []

    def put(q):
        start.wait()
        added.append(q.enqueue(image_id, 1)[1])

    threads = [threading.Thread(target=put, args=(jobs if i % 2 else other,))
               for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(added) == [False] * 15 + [True]
    assert [r['image_id'] for r in jobs.all()] == [image_id]
    assert not [n for n in os.listdir(jobs.dir) if n.endswith(job_queue.TMP_SUFFIX)]


def test_a_job_queued_again_after_it_ended_replaces_its_old_record(jobs):
    image_id = new_id()
    jobs.enqueue(image_id, 1)
    jobs.claim()
    jobs.update(image_id, state=job_queue.FAILED, last_error='boom')
    assert jobs.get(image_id)['state'] == job_queue.FAILED
    record, added = jobs.enqueue(image_id, 1)
    assert added and jobs.get(image_id)['state'] == job_queue.QUEUED
    assert [r['state'] for r in jobs.all()] == [job_queue.QUEUED]
    assert os.listdir(jobs.done_dir) == [] and os.listdir(jobs.failed_dir) == []


def test_a_failure_recorded_while_the_image_is_queued_keeps_the_job(jobs, other,
                                                                   monkeypatch):
    # record_failure found no pending record; before it writes its failed
    # one, another process queues the image (enqueue takes no lock).
    image_id = new_id()
    load = job_queue.JobQueue._load

    def load_then_queue(path):
        record = load(path)
        if path == jobs._path(image_id, job_queue.QUEUED) and record is None:
            other.enqueue(image_id, 1)
        return record

    monkeypatch.setattr(jobs, '_load', load_then_queue)
    jobs.record_failure(image_id, 1, 'over the pin budget')
    monkeypatch.undo()
    assert jobs.get(image_id)['state'] == job_queue.QUEUED
    assert [(r['image_id'], r['state']) for r in jobs.all()] == [(image_id, job_queue.QUEUED)]
    assert drain(jobs) == [image_id]


def test_a_new_drainer_removes_records_left_half_written(jobs):
    old = os.path.join(jobs.dir, new_id() + '.dead1234' + job_queue.TMP_SUFFIX)
    fresh = os.path.join(jobs.done_dir, new_id() + '.live5678' + job_queue.TMP_SUFFIX)
    for path in (old, fresh):
        with open(path, 'w') as f:
            f.write('{')
    long_ago = time.time() - job_queue.TMP_MAX_AGE - 5
    os.utime(old, (long_ago, long_ago))
    jobs.requeue_caching()
    assert not os.path.exists(old)
    assert os.path.exists(fresh), 'a record being written by a live process stays'


def _assert_queued_without_waiting(jobs, image_id, held):
    """Queue ``image_id`` from another thread; it must return within 5 s."""
    putter = threading.Thread(target=jobs.enqueue, args=(image_id, 1))
    putter.start()
    putter.join(5)
    assert not putter.is_alive(), 'enqueue waited for %s' % held


def test_queuing_in_the_drainers_process_does_not_wait_for_its_commit(jobs):
    assert drain(jobs) == []   # this process is the drainer now
    committing, done = threading.Event(), threading.Event()

    def commit():
        with jobs.locked():   # as the worker holds it across a commit
            committing.set()
            done.wait(10)

    holder = threading.Thread(target=commit)
    holder.start()
    try:
        assert committing.wait(5)
        image_id = new_id()
        _assert_queued_without_waiting(jobs, image_id, 'the commit')
    finally:
        done.set()
        holder.join(10)
    assert drain(jobs) == [image_id]


def test_queuing_in_the_drainers_process_does_not_wait_for_a_claims_write(jobs, monkeypatch):
    """The drainer marks a record caching while a PUT queues another image:
    the PUT does not wait for that write to end, and both jobs are kept."""
    first, second = new_id(), new_id()
    jobs.enqueue(first, 1)
    writing, done = threading.Event(), threading.Event()
    put = jobs.put

    def slow_put(record, drop_other=True):
        if record['state'] == job_queue.CACHING:
            writing.set()
            done.wait(10)
        return put(record, drop_other)
    monkeypatch.setattr(jobs, 'put', slow_put)
    claims = []
    claimer = threading.Thread(target=lambda: claims.append(jobs.claim()))
    claimer.start()
    try:
        assert writing.wait(5)
        _assert_queued_without_waiting(jobs, second, "the claim's write")
    finally:
        done.set()
        claimer.join(10)
    assert claims[0][0]['image_id'] == first
    assert jobs.get(first)['state'] == job_queue.CACHING
    assert drain(jobs) == [second]


def test_a_claim_whose_write_fails_leaves_the_job_in_line(jobs, monkeypatch):
    image_id = new_id()
    jobs.enqueue(image_id, 1)

    def full(record, drop_other=True):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(jobs, 'put', full)
    with pytest.raises(OSError):
        jobs.claim()
    monkeypatch.undo()
    assert jobs.get(image_id)['state'] == job_queue.QUEUED
    assert drain(jobs) == [image_id]


def _flock_is_held(jobs):
    probe = os.open(os.path.join(jobs.dir, '.lock'), os.O_RDWR)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(probe)


def test_the_lock_taken_again_by_its_holder_stays_held_until_the_outer_release(jobs):
    with jobs.locked():
        with jobs.locked():
            assert _flock_is_held(jobs)
        assert _flock_is_held(jobs), 'the inner release freed the lock'
    assert not _flock_is_held(jobs)


def _finish(jobs, image_id, state):
    jobs.enqueue(image_id, 10)
    assert jobs.claim()[0]['image_id'] == image_id
    jobs.update(image_id, state=state, finished_at=time.time())


def test_cached_records_of_entries_gone_are_dropped_and_nothing_else(jobs):
    evicted, still_cached, failed, queued = (new_id() for _ in range(4))
    _finish(jobs, evicted, job_queue.CACHED)
    _finish(jobs, still_cached, job_queue.CACHED)
    _finish(jobs, failed, job_queue.FAILED)
    jobs.enqueue(queued, 10)
    asked = []

    def is_cached(image_id):
        assert _flock_is_held(jobs), 'asked outside the queue lock'
        asked.append(image_id)
        return image_id == still_cached

    everything = [evicted, still_cached, failed, queued, new_id()]
    assert jobs.drop_cached(everything, is_cached) == [evicted]
    assert set(asked) == {evicted, still_cached}   # only cached records ask
    assert jobs.get(evicted) is None
    assert {r['image_id']: r['state'] for r in jobs.all()} == {
        still_cached: job_queue.CACHED, failed: job_queue.FAILED, queued: job_queue.QUEUED}
    assert jobs.cached_record_ids() == [still_cached]


def test_finished_records_are_kept_by_outcome(jobs):
    cached, failed = new_id(), new_id()
    _finish(jobs, cached, job_queue.CACHED)
    _finish(jobs, failed, job_queue.FAILED)
    assert os.listdir(jobs.done_dir) == [cached]
    assert os.listdir(jobs.failed_dir) == [failed]
    assert [r['image_id'] for r in jobs.failed()] == [failed]
    assert jobs.cached_record_ids() == [cached]
    assert jobs.get(failed)['state'] == job_queue.FAILED
    assert jobs.remove(failed) and jobs.get(failed) is None


def _write_record(directory, record):
    with open(os.path.join(directory, record['image_id']), 'w') as f:
        json.dump(record, f)


def test_a_failed_record_under_done_from_before_failed_existed(jobs):
    """Read where it is, cleared from there, and moved by the next drainer."""
    old, cleared = new_id(), new_id()
    for image_id in (old, cleared):
        record = job_queue.new_record(image_id, 10, 'n1')
        record.update(state=job_queue.FAILED, last_error='boom', finished_at=time.time())
        _write_record(jobs.done_dir, record)
    assert jobs.get(old)['state'] == job_queue.FAILED
    assert jobs.clear((job_queue.FAILED,), keep={old}) == [cleared]
    jobs.requeue_caching()
    assert os.listdir(jobs.done_dir) == []
    assert [r['image_id'] for r in jobs.failed()] == [old]
    assert [r['last_error'] for r in jobs.all()] == ['boom']


def test_all_shows_one_record_per_image_the_later_finished(jobs):
    image_id = new_id()
    record = job_queue.new_record(image_id, 10, 'n1')
    record.update(state=job_queue.FAILED, last_error='boom', finished_at=100.0)
    _write_record(jobs.failed_dir, record)
    record.update(state=job_queue.CACHED, last_error=None, finished_at=200.0)
    _write_record(jobs.done_dir, record)   # as for a moment in put()
    assert [(r['state'], r['finished_at']) for r in jobs.all()] == [(job_queue.CACHED, 200.0)]


def test_a_file_that_is_not_its_images_record_is_ignored(jobs):
    image_id, other = new_id(), new_id()
    record = job_queue.new_record(other, 10, 'n1')
    record.update(state=job_queue.FAILED, finished_at=time.time())
    with open(os.path.join(jobs.failed_dir, image_id), 'w') as f:
        json.dump(record, f)
    assert jobs.all() == [] and jobs.failed() == []


@pytest.fixture
def reads(monkeypatch):
    """Which record files are read, and how many records parsed, from here on."""
    seen = {'read': [], 'parsed': 0}
    real_read, real_parse = job_queue._read, job_queue._parse

    def counted_read(path):
        seen['read'].append(os.path.basename(path))
        return real_read(path)

    def counted_parse(raw):
        seen['parsed'] += 1
        return real_parse(raw)

    monkeypatch.setattr(job_queue, '_read', counted_read)
    monkeypatch.setattr(job_queue, '_parse', counted_parse)
    return seen


def _views(records):
    return sorted((r['image_id'], r['state'], r['finished_at'], r['attempts']) for r in records)


def test_finished_records_are_read_again_only_when_written(jobs, other, reads):
    cached, failed, queued = new_id(), new_id(), new_id()
    _finish(jobs, cached, job_queue.CACHED)
    _finish(jobs, failed, job_queue.FAILED)
    jobs.enqueue(queued, 10)
    first = jobs.all()
    assert {cached, failed} <= set(reads['read'])
    reads['read'].clear()
    assert jobs.all() == first
    assert reads['read'] == [queued]   # the pending record only

    # Another process writes a finished record: that file alone is read again.
    other.update(failed, last_error='boom', finished_at=time.time() + 5)
    reads['read'].clear()
    reads['parsed'] = 0
    changed = jobs.all()
    assert sorted(reads['read']) == sorted([failed, queued])
    assert reads['parsed'] == 2   # the failed record and the pending one
    assert [r['last_error'] for r in changed if r['image_id'] == failed] == ['boom']
    assert _views(changed) == _views(other.all())


def test_when_the_change_log_starts_again_every_finished_record_is_read(jobs, other, reads,
                                                                         monkeypatch):
    monkeypatch.setattr(job_queue, 'MAX_CHANGE_LOG', 8 + 37 * 3)
    names = [new_id() for _ in range(3)]
    for image_id in names:
        _finish(jobs, image_id, job_queue.CACHED)
    assert len(other.all()) == 3
    # The fourth write starts the log again: the other process cannot tell
    # what changed, and reads every file, parsing only the changed one.
    other_view = other.all()
    jobs.update(names[0], attempts=7)
    reads['read'].clear()
    reads['parsed'] = 0
    listed = other.all()
    assert sorted(reads['read']) == sorted(names) and reads['parsed'] == 1
    assert [r['attempts'] for r in listed if r['image_id'] == names[0]] == [7]
    assert _views(listed) != _views(other_view)
    # After that, one write is one read again.
    jobs.update(names[1], attempts=8)
    reads['read'].clear()
    assert [r['attempts'] for r in other.all() if r['image_id'] == names[1]] == [8]
    assert reads['read'] == [names[1]]
    assert os.path.getsize(os.path.join(jobs.dir, job_queue.FINISHED_LOG)) == 8 + 37 * 2


def test_a_change_log_entry_half_written_is_read_once_whole(jobs, other, reads):
    """A reader that sees part of an entry leaves it for its next look."""
    image_id = new_id()
    _finish(jobs, image_id, job_queue.CACHED)
    assert len(other.all()) == 1
    log = os.path.join(jobs.dir, job_queue.FINISHED_LOG)
    # Written by hand as another process's write in progress: the record,
    # then the first half of its entry.
    record = jobs.get(image_id)
    record['attempts'] = 9
    _write_record(jobs.done_dir, record)
    entry = ('%s\n' % image_id).encode()
    with open(log, 'ab') as f:
        f.write(entry[:20])
    reads['read'].clear()
    other.all()
    assert reads['read'] == []
    with open(log, 'ab') as f:
        f.write(entry[20:])
    assert [r['attempts'] for r in other.all()] == [9]
    assert reads['read'] == [image_id]


def test_a_count_left_by_an_earlier_version_reads_as_an_empty_log(jobs, tmp_path):
    image_id = new_id()
    _finish(jobs, image_id, job_queue.CACHED)
    jobs.close()
    with open(os.path.join(str(tmp_path), 'queue', job_queue.FINISHED_LOG), 'wb') as f:
        f.write((41).to_bytes(8, 'little'))
    again = job_queue.JobQueue(str(tmp_path), 'n1')
    try:
        assert [r['image_id'] for r in again.all()] == [image_id]
        again.update(image_id, attempts=3)
        assert [r['attempts'] for r in again.all()] == [3]
    finally:
        again.close()


def test_a_finished_record_removed_and_written_again_is_read_again(jobs, other):
    image_id = new_id()
    _finish(jobs, image_id, job_queue.CACHED)
    assert [r['state'] for r in jobs.all()] == [job_queue.CACHED]
    assert other.remove(image_id)
    assert jobs.all() == []
    record = job_queue.new_record(image_id, 10, 'n1')
    record.update(state=job_queue.FAILED, last_error='again', finished_at=time.time())
    with other.locked():
        other.put(record)
    assert [(r['state'], r['last_error']) for r in jobs.all()] == [(job_queue.FAILED, 'again')]


def test_records_returned_are_copies(jobs):
    image_id = new_id()
    _finish(jobs, image_id, job_queue.CACHED)
    jobs.all()[0]['state'] = 'changed by a caller'
    jobs.failed()
    assert jobs.all()[0]['state'] == job_queue.CACHED


def test_listings_always_equal_a_fresh_read_whatever_the_writes(jobs, other, tmp_path):
    """Random writes from two processes; after each, what ``jobs`` lists (from what
    it kept) equals what a process that kept nothing reads."""
    rng = random.Random(4)
    images = [new_id() for _ in range(12)]

    def enqueue(queue, image_id):
        queue.enqueue(image_id, 10)

    def claim(queue, image_id):
        jobs.claim()   # the drainer is ``jobs``

    def finish(queue, image_id):
        state = rng.choice((job_queue.CACHED, job_queue.FAILED))
        queue.update(image_id, state=state, finished_at=rng.random(),
                     attempts=rng.randrange(5))

    def remove(queue, image_id):
        queue.remove(image_id)

    def drop(queue, image_id):
        queue.drop_cached([image_id], lambda _: False)

    def clear(queue, image_id):
        queue.clear((rng.choice(job_queue.STATES),), keep=set(rng.sample(images, 6)))

    def requeue(queue, image_id):
        queue.requeue_caching()

    operations = (enqueue, enqueue, claim, finish, finish, remove, drop, clear, requeue)
    for _ in range(300):
        operation = rng.choice(operations)
        operation(rng.choice((jobs, other)), rng.choice(images))
        fresh = job_queue.JobQueue(str(tmp_path), 'n1')
        try:
            for lister in (jobs, other):
                assert _views(lister.all()) == _views(fresh.all()), operation.__name__
                assert _views(lister.failed()) == _views(fresh.failed()), operation.__name__
        finally:
            fresh.close()


def test_a_failed_record_moved_from_done_is_read_again_by_other_processes(jobs, other):
    image_id = new_id()
    record = job_queue.new_record(image_id, 10, 'n1')
    record.update(state=job_queue.FAILED, last_error='in failed/', finished_at=100.0)
    with jobs.locked():
        jobs.put(record)
    # As an earlier version left it: a failed record under done/.
    record.update(last_error='in done/', finished_at=200.0)
    _write_record(jobs.done_dir, record)
    assert [r['last_error'] for r in other.failed()] == ['in failed/']
    jobs.requeue_caching()   # moves it over the one in failed/
    assert [r['last_error'] for r in other.failed()] == ['in done/']


def test_a_file_of_json_that_is_not_an_object_is_no_record(jobs):
    image_id = new_id()
    for directory in (jobs.dir, jobs.done_dir, jobs.failed_dir):
        with open(os.path.join(directory, image_id), 'w') as f:
            f.write('["%s"]' % image_id)
    assert jobs.get(image_id) is None
    assert jobs.all() == [] and jobs.pending() == [] and jobs.failed() == []


def test_a_record_that_cannot_be_written_leaves_no_file(jobs, monkeypatch):
    """A write that fails (the disk full) queues nothing and leaves no half
    record behind, not even the file it was being written to."""
    image_id = new_id()

    def full(fd, data):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(job_queue.os, 'write', full)
    with pytest.raises(OSError):
        jobs.enqueue(image_id, 10)
    monkeypatch.undo()
    assert jobs.get(image_id) is None
    assert [name for _, _, names in os.walk(jobs.dir) for name in names
            if name.endswith(job_queue.TMP_SUFFIX) or image_id in name] == []
    record, added = jobs.enqueue(image_id, 10)
    assert added and jobs.get(image_id)['state'] == job_queue.QUEUED


def test_a_record_is_written_whole_when_the_system_writes_it_in_parts(jobs, monkeypatch):
    write = os.write
    monkeypatch.setattr(job_queue.os, 'write', lambda fd, data: write(fd, data[:7]))
    image_id = new_id()
    record, added = jobs.enqueue(image_id, 10)
    monkeypatch.undo()
    assert added and jobs.get(image_id) == record


@pytest.mark.skipif(not os.path.isdir('/proc/self/fd'), reason='needs /proc/self/fd')
def test_a_pending_record_updated_under_the_lock_is_freed_after_it(jobs, monkeypatch):
    # The file system frees a file when its last link and descriptor go: in
    # a rename over it, while the directory is held (and GET /v2/cache lists
    # queue/). So the queue keeps the old record open until the lock is
    # released, for the updates that come during fills (their progress).
    image_id = new_id()
    jobs.enqueue(image_id, 10)
    record_path = jobs._path(image_id, job_queue.QUEUED)
    real_replace, open_at_replace = os.replace, []

    def replace(src, dst):
        open_at_replace.append(os.path.exists(dst) and held_open(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, 'replace', replace)
    with jobs.locked():
        jobs.update(image_id, state=job_queue.CACHING, bytes_done=5)
        jobs.update(image_id, bytes_done=7)
        assert open_at_replace == [True, True]
        # Taken again and released by update(): still held.
        assert deleted_files_open(jobs.dir) == [record_path, record_path]
    assert deleted_files_open(jobs.dir) == []
    assert jobs.get(image_id)['bytes_done'] == 7
    # Without the lock held (callers should hold it), nothing is left open.
    jobs.put(dict(jobs.get(image_id), bytes_done=8), free_later=True)
    assert deleted_files_open(jobs.dir) == [] and jobs.get(image_id)['bytes_done'] == 8
    # A finished record goes to done/, where it replaces nothing.
    open_at_replace.clear()
    jobs.update(image_id, state=job_queue.CACHED)
    assert open_at_replace == [False]
