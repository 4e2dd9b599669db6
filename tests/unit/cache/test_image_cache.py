"""ImageCache: verified fills, followers, eviction, clean-up and path safety."""

import os
import threading
import uuid

import pytest

from glance_cache import cache as cache_module
from glance_cache import errors
from glance_cache.cache import fill
from tests.unit.cache.conftest import cached_bytes, deleted_files_open, held_open, image_for


def _fill(cache, data, image_id=None, chunk=1000, source=None):
    image = image_for(data, image_id or str(uuid.uuid4()))
    job, started = cache.begin_fill(image)
    assert started
    job.run(source or (lambda: (data[i:i + chunk] for i in range(0, len(data), chunk))))
    return job


def test_fill_commits_verified_data(cache_factory):
    cache = cache_factory()
    data = os.urandom(10_000)
    job = _fill(cache, data)
    assert job.state == job.DONE and job.bytes_done == len(data)
    assert cached_bytes(cache, job.image_id) == data
    entry = cache.get(job.image_id)
    assert entry.size == len(data) and entry.hits == 1
    assert os.listdir(cache.incomplete_dir) == []


@pytest.mark.parametrize('tamper, check', [
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), 'checksum'),
    (lambda d: d[:-10], 'size'),
    (lambda d: d + b'extra', 'size'),
])
def test_fill_with_bad_data_is_quarantined_and_never_served(cache_factory, tamper, check):
    cache = cache_factory()
    data = os.urandom(5000)
    image = image_for(data, str(uuid.uuid4()))
    bad = tamper(data)
    job, _ = cache.begin_fill(image)
    follower = job.follow(1000)
    job.run(lambda: iter([bad]))
    assert job.state == job.FAILED
    assert check in job.error
    assert cache.get(image['id']) is None and cache.open(image['id']) is None
    assert os.listdir(cache.invalid_dir) == [image['id']]
    with pytest.raises(fill.FillError):
        b''.join(follower)


def test_multihash_mismatch_is_named(cache_factory):
    cache = cache_factory()
    data = os.urandom(100)
    image = dict(image_for(data, str(uuid.uuid4())), os_hash_value='0' * 128)
    job, _ = cache.begin_fill(image)
    job.run(lambda: iter([data]))
    assert job.state == job.FAILED and 'sha512 mismatch' in job.error


def test_store_error_fails_the_fill_and_leaves_nothing(cache_factory):
    cache = cache_factory()

    def broken():
        yield b'x' * 100
        raise OSError('store went away')

    data = b'x' * 1000
    job = _fill(cache, data, source=broken)
    assert job.state == job.FAILED and 'store went away' in job.error
    assert os.listdir(cache.incomplete_dir) == [] and os.listdir(cache.invalid_dir) == []
    assert cache.current_fill(job.image_id) is None


def test_cancel_stops_before_next_chunk(cache_factory):
    cache = cache_factory()
    data = os.urandom(10_000)
    image = image_for(data, str(uuid.uuid4()))
    job, _ = cache.begin_fill(image)

    def source():
        yield data[:1000]
        cache.delete(image['id'])
        yield data[1000:]

    job.run(source)
    assert job.state == job.CANCELLED and job.bytes_done == 1000
    assert cache.get(image['id']) is None
    assert os.listdir(cache.incomplete_dir) == []


def test_second_begin_joins_the_running_fill(cache_factory):
    cache = cache_factory()
    data = os.urandom(50_000)
    image = image_for(data, str(uuid.uuid4()))
    job, started = cache.begin_fill(image)
    again, started_again = cache.begin_fill(image)
    assert started and not started_again and again is job
    gate = threading.Event()
    reads = []

    def source():
        reads.append(1)
        for i in range(0, len(data), 5000):
            gate.wait(5)
            yield data[i:i + 5000]

    followers = [job.follow(4096) for _ in range(3)]
    results = [None] * 3

    def consume(i):
        results[i] = b''.join(followers[i])

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    runner = threading.Thread(target=job.run, args=(source,))
    runner.start()
    gate.set()
    runner.join(10)
    for t in threads:
        t.join(10)
    assert reads == [1]
    assert results == [data] * 3
    assert job.follow(4096) is None, 'a finished fill has no followers'


def test_eviction_keeps_cache_under_max_size_least_recent_first(cache_factory):
    cache = cache_factory(max_size=10_000, low_watermark=0.5)
    jobs = [_fill(cache, os.urandom(3000)) for _ in range(3)]
    cached_bytes(cache, jobs[0].image_id)   # the oldest becomes the most recent
    newest = _fill(cache, os.urandom(3000))
    remaining = {e.image_id for e in cache.list()}
    assert cache.total_size() <= 10_000
    assert jobs[0].image_id in remaining and newest.image_id in remaining
    assert jobs[1].image_id not in remaining
    for _ in range(20):
        _fill(cache, os.urandom(2500))
        assert cache.total_size() <= 10_000


def test_entries_being_read_are_not_evicted(cache_factory):
    cache = cache_factory(max_size=6000, low_watermark=0.0)
    first = _fill(cache, os.urandom(3000))
    second = _fill(cache, os.urandom(3000))
    reading = cache.open(first.image_id)
    third = _fill(cache, os.urandom(3000))
    ids = {e.image_id for e in cache.list()}
    assert first.image_id in ids and third.image_id in ids
    assert second.image_id not in ids
    assert len(reading.read()) == 3000
    reading.close()


def test_cache_full_of_readers_refuses_fill(cache_factory):
    cache = cache_factory(max_size=4000)
    first = _fill(cache, os.urandom(3000))
    reading = cache.open(first.image_id)
    with pytest.raises(cache_module.CacheFull):
        cache.begin_fill(image_for(os.urandom(3000), str(uuid.uuid4())))
    reading.close()


def _watch_freeing(monkeypatch, cache):
    """Record, for each committed entry unlinked, whether this process held it
    open at the unlink, and whether the cache's lock was held when the last
    descriptor of a removed entry was closed. Returns the two lists."""
    held_at_unlink, locked_at_free = [], []
    real_unlink, real_close = os.unlink, os.close

    def unlink(path, *args, **kwargs):
        if os.path.dirname(str(path)) == cache.dir:
            held_at_unlink.append(held_open(path))
        return real_unlink(path, *args, **kwargs)

    def close(fd):
        try:
            target = os.readlink('/proc/self/fd/%d' % fd)
        except OSError:
            target = ''
        if target.endswith(' (deleted)') and os.path.dirname(target) == cache.dir:
            locked_at_free.append(cache._lock.locked())
        return real_close(fd)

    monkeypatch.setattr(os, 'unlink', unlink)
    monkeypatch.setattr(os, 'close', close)
    return held_at_unlink, locked_at_free


@pytest.mark.skipif(not os.path.isdir('/proc/self/fd'), reason='needs /proc/self/fd')
def test_removed_entries_are_freed_after_the_lock_is_released(cache_factory, monkeypatch):
    # Freeing the blocks of an image of gigabytes can take seconds on a busy
    # disk; under the cache's lock every download and fill would wait.
    cache = cache_factory(max_size=10_000, low_watermark=0.5)
    entries = [_fill(cache, os.urandom(3000)).image_id for _ in range(3)]
    held_at_unlink, locked_at_free = _watch_freeing(monkeypatch, cache)
    assert cache.delete(entries[0])                  # deleted
    _fill(cache, os.urandom(6000))                   # evicts one to make room
    assert cache.prune() == (2, 9000)                # evicts both left
    _fill(cache, os.urandom(3000))
    assert cache.clear() == 1
    assert held_at_unlink == [True] * 5
    assert locked_at_free == [False] * 5
    assert deleted_files_open(cache.dir) == [] and cache.list() == []
    assert not [name for name in os.listdir(cache.dir) if len(name) == 36]


@pytest.mark.skipif(not os.path.isdir('/proc/self/fd'), reason='needs /proc/self/fd')
def test_entries_evicted_before_the_cache_is_found_full_are_freed(cache_factory):
    cache = cache_factory(max_size=9000, low_watermark=0.0)
    evictable = _fill(cache, os.urandom(3000)).image_id
    read = [_fill(cache, os.urandom(3000)).image_id for _ in range(2)]
    readers = [cache.open(image_id) for image_id in read]
    try:
        with pytest.raises(cache_module.CacheFull):
            cache.begin_fill(image_for(os.urandom(6000), str(uuid.uuid4())))
        assert cache.get(evictable) is None
        assert deleted_files_open(cache.dir) == []
    finally:
        for reader in readers:
            reader.close()


def test_image_larger_than_cache_is_refused_with_reason(cache_factory):
    cache = cache_factory(max_size=1000)
    with pytest.raises(cache_module.CacheFull) as info:
        cache.begin_fill(image_for(b'x' * 1001, str(uuid.uuid4())))
    assert 'larger than the whole cache' in info.value.message


def test_clean_removes_abandoned_and_invalid_but_not_live_fills(cache_factory):
    cache = cache_factory()
    dead = os.path.join(cache.incomplete_dir, str(uuid.uuid4()))
    with open(dead, 'wb') as f:
        f.write(b'abc')
    with open(os.path.join(cache.invalid_dir, str(uuid.uuid4())), 'wb') as f:
        f.write(b'defg')
    live_image = image_for(b'x' * 10, str(uuid.uuid4()))
    live, _ = cache.begin_fill(live_image)
    assert cache.clean() == (2, 7)
    assert os.listdir(cache.incomplete_dir) == [live_image['id']]
    live.run(lambda: iter([b'x' * 10]))
    assert live.state == live.DONE


def test_start_up_cleans_and_reconciles(tmp_path, driver_name):
    from tests.unit.cache.conftest import make_conf
    conf = make_conf(tmp_path / 'c', driver=driver_name)
    cache = cache_module.ImageCache(conf)
    job = _fill(cache, b'z' * 100)
    with open(os.path.join(cache.incomplete_dir, str(uuid.uuid4())), 'wb') as f:
        f.write(b'left by a dead process')
    cache.close()
    reopened = cache_module.ImageCache(conf)
    try:
        assert os.listdir(reopened.incomplete_dir) == []
        assert [e.image_id for e in reopened.list()] == [job.image_id]
    finally:
        reopened.close()


def test_prune_evicts_to_low_watermark(cache_factory):
    cache = cache_factory(max_size=10_000, low_watermark=0.3)
    for _ in range(3):
        _fill(cache, os.urandom(3000))
    files, size = cache.prune()
    assert (files, size) == (2, 6000)
    assert cache.total_size() == 3000


@pytest.mark.parametrize('bad', ['../../etc/passwd', '/etc/passwd', 'a\x00b', '..',
                                 '', 'ABC', '%2e%2e%2f'])
def test_paths_only_for_canonical_uuids(cache_factory, bad):
    cache = cache_factory()
    for call in (cache.path, cache.incomplete_path, cache.get, cache.open, cache.delete):
        with pytest.raises(errors.NotFound):
            call(bad)


def test_delete_and_clear(cache_factory):
    cache = cache_factory()
    a, b = _fill(cache, b'a' * 10), _fill(cache, b'b' * 10)
    assert cache.delete(a.image_id) is True
    assert cache.delete(a.image_id) is False
    assert cache.clear() == 1
    assert cache.list() == [] and not os.path.exists(cache.path(b.image_id))


# Two ImageCache objects over one directory stand for two server processes of
# a node: each has its own reservation file and locks.

def test_a_fill_in_another_process_keeps_its_room(cache_factory):
    first, second = cache_factory(max_size=10_000), cache_factory(max_size=10_000)
    data = os.urandom(6000)
    running, started = first.begin_fill(image_for(data, str(uuid.uuid4())))
    assert started
    with pytest.raises(cache_module.CacheFull):
        second.begin_fill(image_for(os.urandom(6000), str(uuid.uuid4())))
    # Room for what is left over.
    small, _ = second.begin_fill(image_for(b'y' * 4000, str(uuid.uuid4())))
    small.run(lambda: iter([b'y' * 4000]))
    running.run(lambda: iter([data]))
    assert running.state == running.DONE and small.state == small.DONE
    assert first.total_size() == 10_000


def test_reservations_of_another_process_count_when_evicting(cache_factory):
    first, second = cache_factory(max_size=10_000, low_watermark=0.5), \
        cache_factory(max_size=10_000, low_watermark=0.5)
    old = [_fill(second, os.urandom(2000)) for _ in range(3)]   # 6000 committed
    running, _ = first.begin_fill(image_for(os.urandom(3000), str(uuid.uuid4())))
    # 6000 committed + 3000 reserved elsewhere: 3000 more must evict, down to
    # the low watermark counting the other's reservation.
    newest = _fill(second, os.urandom(3000))
    left = {e.image_id for e in second.list()}
    assert newest.image_id in left
    assert second.total_size() + 3000 <= 10_000
    assert {j.image_id for j in old} - left, 'an old entry was evicted'
    running.cancel('done with it')


def test_a_released_reservation_frees_its_room_for_the_others(cache_factory):
    first, second = cache_factory(max_size=10_000), cache_factory(max_size=10_000)
    running, _ = first.begin_fill(image_for(os.urandom(8000), str(uuid.uuid4())))
    running.run(lambda: iter([b'z' * 10]))   # fails verification: the bytes go back
    assert running.state == running.FAILED
    job, started = second.begin_fill(image_for(os.urandom(8000), str(uuid.uuid4())))
    assert started
    job.cancel('done with it')


def _reserve_and_die(conf_dir, driver, image_size, ready):
    from tests.unit.cache.conftest import make_conf
    cache = cache_module.ImageCache(make_conf(conf_dir, driver=driver, max_size=10_000))
    cache.begin_fill(image_for(os.urandom(image_size), str(uuid.uuid4())))
    ready.set()
    os._exit(0)   # no clean-up: as if killed


def test_the_reservation_of_a_dead_process_is_ignored_and_removed(cache_factory, tmp_path,
                                                                  driver_name):
    import multiprocessing
    cache = cache_factory(max_size=10_000)
    ctx = multiprocessing.get_context('spawn')
    ready = ctx.Event()
    child = ctx.Process(target=_reserve_and_die,
                        args=(str(tmp_path / 'cache'), driver_name, 9000, ready))
    child.start()
    child.join(60)
    assert ready.is_set() and child.exitcode == 0
    reserved_dir = os.path.join(cache.dir, cache_module.RESERVED)

    def owners():
        return [int(n.split('-')[0]) for n in os.listdir(reserved_dir) if not n.startswith('.')]

    assert child.pid in owners()
    job, started = cache.begin_fill(image_for(os.urandom(9000), str(uuid.uuid4())))
    assert started
    assert owners() == [os.getpid()]
    job.cancel('done with it')
