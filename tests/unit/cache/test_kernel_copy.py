"""Fills from the filesystem store: the kernel copies the store's file into the cache.

The store is glance_store's real filesystem driver (ImageStore), the cache a
real ImageCache; the system calls are the real ones, counted by wrapping
them, except where a test makes one fail to stand for a kernel or file
system that cannot copy between the two files.
"""

import errno
import hashlib
import os
import uuid

import pytest
from oslo_config import cfg

from glance_cache import conf as gc_conf
from glance_cache import store as store_module
from glance_cache.cache import fill, hashing
from tests.unit.cache.conftest import cached_bytes, image_for

MIB = 1024 * 1024
BIG = 3 * fill.KERNEL_COPY_MIN + 12345   # several copies, digested by processes
SHM = '/dev/shm'


@pytest.fixture(autouse=True)
def steady_copies(monkeypatch):
    """Every kernel copy asks for KERNEL_COPY_MIN bytes, however quick, so
    that the tests can count the calls."""
    monkeypatch.setattr(fill, 'KERNEL_COPY_MAX', fill.KERNEL_COPY_MIN)


def _image_store(directory):
    conf = cfg.ConfigOpts()
    gc_conf.register_opts(conf)
    conf([], project='glance-cache-test', default_config_files=[])
    conf.set_override('filesystem_store_datadir', str(directory), group='glance_store')
    return store_module.ImageStore(conf)


def _stored(directory, data):
    """(ImageStore, image record) for ``data`` added to a file store in ``directory``."""
    image_store = _image_store(directory)
    image = image_for(data, str(uuid.uuid4()))
    image['location'] = image_store.add(image['id'], _Reader(data), len(data))[0]
    return image_store, image


class _Reader:
    def __init__(self, data):
        self._data, self._at = data, 0

    def read(self, size=-1):
        size = len(self._data) - self._at if size is None or size < 0 else size
        piece = self._data[self._at:self._at + size]
        self._at += len(piece)
        return piece


def _counted(monkeypatch, name, calls, fail_with=None, before=None):
    """Wrap ``os.<name>``, recording each call in ``calls[name]``; with
    ``fail_with``, every call fails with that errno instead."""
    real = getattr(os, name)
    calls.setdefault(name, 0)

    def wrapper(*args):
        calls[name] += 1
        if before is not None:
            before()
        if fail_with is not None:
            raise OSError(fail_with, os.strerror(fail_with))
        return real(*args)

    monkeypatch.setattr(os, name, wrapper)


def _fill_from(cache, image_store, image):
    job, started = cache.begin_fill(image)
    assert started
    job.run(lambda: image_store.get(image['location'])[0], image_store.local_descriptor)
    return job


def _fill_counted(monkeypatch, cache, store_dir, data, fail_with=None):
    """Fill ``data`` from a file store in ``store_dir``, the kernel's copy calls
    counted (failing with ``fail_with`` if given); check it is cached whole.
    Returns the job and the calls."""
    image_store, image = _stored(store_dir, data)
    calls = {}
    _counted(monkeypatch, 'copy_file_range', calls, fail_with=fail_with)
    _counted(monkeypatch, 'sendfile', calls, fail_with=fail_with)
    job = _fill_from(cache, image_store, image)
    assert job.state == job.DONE, job.error
    assert cached_bytes(cache, image['id']) == data
    return job, calls


def test_the_kernel_copies_an_image_from_the_file_store(cache_factory, tmp_path, monkeypatch):
    data = os.urandom(BIG)
    job, calls = _fill_counted(monkeypatch, cache_factory(), tmp_path / 'store', data)
    # KERNEL_COPY_MIN a call (see steady_copies), and one more that finds the end.
    assert calls == {'copy_file_range': 5, 'sendfile': 0}
    assert job.bytes_done == len(data)


@pytest.mark.skipif(not os.path.isdir(SHM), reason='no tmpfs at %s' % SHM)
def test_across_file_systems_the_fill_still_copies_in_the_kernel(cache_factory, monkeypatch):
    # The store on tmpfs, the cache on the test's disk: Linux 5.19 and later
    # refuse copy_file_range between them (EXDEV), and sendfile copies.
    cache = cache_factory()
    if os.stat(SHM).st_dev == os.stat(cache.incomplete_dir).st_dev:
        pytest.skip('the cache is on %s too' % SHM)
    store_dir = os.path.join(SHM, 'glance-cache-test-%s' % uuid.uuid4())
    try:
        _, calls = _fill_counted(monkeypatch, cache, store_dir, os.urandom(BIG))
    finally:
        for name in os.listdir(store_dir):
            os.unlink(os.path.join(store_dir, name))
        os.rmdir(store_dir)
    # Whichever call the kernel took, the image went through it alone.
    assert calls in ({'copy_file_range': 5, 'sendfile': 0},
                     {'copy_file_range': 1, 'sendfile': 5})


@pytest.mark.parametrize('refusal', [errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP])
def test_where_the_kernel_cannot_copy_the_bytes_go_through_the_fill(
        cache_factory, tmp_path, monkeypatch, refusal):
    _, calls = _fill_counted(monkeypatch, cache_factory(), tmp_path / 'store',
                             os.urandom(BIG), fail_with=refusal)
    assert calls == {'copy_file_range': 1, 'sendfile': 1}


@pytest.mark.parametrize('failure', [errno.EIO, errno.EINVAL])
def test_a_copy_that_fails_midway_fails_the_fill_and_leaves_nothing(
        cache_factory, tmp_path, monkeypatch, failure):
    cache = cache_factory()
    data = os.urandom(BIG)
    image_store, image = _stored(tmp_path / 'store', data)
    real, calls = os.copy_file_range, []

    def copy_file_range(*args):
        calls.append(args)
        if len(calls) == 2:
            raise OSError(failure, os.strerror(failure))
        return real(*args)

    monkeypatch.setattr(os, 'copy_file_range', copy_file_range)
    job = _fill_from(cache, image_store, image)
    # Not a refusal to start, whatever the error: the fill does not go on
    # another way from a half-copied file.
    assert job.state == job.FAILED and os.strerror(failure) in job.error
    assert len(calls) == 2
    assert cache.get(image['id']) is None
    assert os.listdir(cache.incomplete_dir) == []


def test_a_cancel_stops_the_copy_before_its_next_call(cache_factory, tmp_path, monkeypatch):
    cache = cache_factory()
    data = os.urandom(BIG)
    image_store, image = _stored(tmp_path / 'store', data)
    calls = {}
    _counted(monkeypatch, 'copy_file_range', calls,
             before=lambda: cache.delete(image['id']) if calls['copy_file_range'] == 2 else None)
    job = _fill_from(cache, image_store, image)
    assert job.state == job.CANCELLED
    # The call that came with the cancel still copied; none followed it.
    assert calls['copy_file_range'] == 2
    assert job.bytes_done == 2 * fill.KERNEL_COPY_MIN
    assert cache.get(image['id']) is None
    assert os.listdir(cache.incomplete_dir) == []


def test_quick_copies_grow_and_slow_ones_shrink(cache_factory, tmp_path, monkeypatch):
    monkeypatch.setattr(fill, 'KERNEL_COPY_MAX', 64 * MIB)
    quick, slow = fill.KERNEL_COPY_SECONDS / 10, fill.KERNEL_COPY_SECONDS * 4
    # The third call is slow; the calls' own time is the fill's clock.
    took = [quick, quick, slow, quick, quick]
    clock = [0.0]
    monkeypatch.setattr(fill, '_now', lambda: clock[0])
    asked = []
    real = os.copy_file_range

    def copy_file_range(source_fd, fd, count):
        asked.append(count // MIB)
        clock[0] += took[len(asked) - 1]
        return real(source_fd, fd, count)

    monkeypatch.setattr(os, 'copy_file_range', copy_file_range)
    data = os.urandom((8 + 16 + 32) * MIB + 12345)
    job = _fill_from(cache_factory(), *_stored(tmp_path / 'store', data))
    assert job.state == job.DONE, job.error
    # Twice as much after each quick call, half after the slow one; a short
    # call (the image's end) changes nothing.
    assert asked == [8, 16, 32, 16, 16]
    assert cached_bytes(job.cache, job.image_id) == data


def test_a_store_file_longer_than_the_image_is_refused(cache_factory, tmp_path):
    cache = cache_factory()
    data = os.urandom(BIG)
    image_store, image = _stored(tmp_path / 'store', data)
    with open(image['location'][len('file://'):], 'ab') as f:
        f.write(b'more')
    job = _fill_from(cache, image_store, image)
    assert job.state == job.FAILED and 'size mismatch' in job.error
    assert cache.get(image['id']) is None
    assert os.listdir(cache.invalid_dir) == [image['id']]


def test_a_store_file_with_other_bytes_is_refused(cache_factory, tmp_path):
    # The digests read back what the kernel wrote: the copy is verified too.
    cache = cache_factory()
    data = os.urandom(BIG)
    image_store, image = _stored(tmp_path / 'store', data)
    with open(image['location'][len('file://'):], 'r+b') as f:
        f.seek(BIG // 2)
        f.write(b'\0')
    job = _fill_from(cache, image_store, image)
    expected = hashlib.md5(data).hexdigest()
    assert job.state == job.FAILED and 'checksum mismatch' in job.error, job.error
    assert expected in job.error
    assert cache.get(image['id']) is None


def test_small_images_pass_through_the_fill(cache_factory, tmp_path, monkeypatch):
    # Below INLINE_HASH_LIMIT the fill's own thread hashes: it needs the bytes.
    _, calls = _fill_counted(monkeypatch, cache_factory(), tmp_path / 'store',
                             os.urandom(hashing.INLINE_HASH_LIMIT - 1))
    assert calls == {'copy_file_range': 0, 'sendfile': 0}


def test_the_descriptor_is_only_that_of_a_whole_unread_file(tmp_path):
    data = os.urandom(100_000)
    image_store, image = _stored(tmp_path / 'store', data)
    whole = image_store.get(image['location'])[0]
    try:
        fd = image_store.local_descriptor(whole)
        assert os.pread(fd, 10, 0) == data[:10]
    finally:
        whole.close()
    ranged = image_store.get(image['location'], offset=0, length=1000)[0]
    read = image_store.get(image['location'])[0]
    reading = iter(read)   # kept: dropping it would close the file
    next(reading)
    try:
        assert image_store.local_descriptor(ranged) is None
        assert image_store.local_descriptor(read) is None
        assert image_store.local_descriptor(iter([data])) is None
    finally:
        ranged.close()
        read.close()


def test_with_kernel_copy_off_the_bytes_go_through_the_fill(cache_factory, tmp_path,
                                                             monkeypatch):
    _, calls = _fill_counted(monkeypatch, cache_factory(kernel_copy=False),
                             tmp_path / 'store', os.urandom(BIG))
    assert calls == {'copy_file_range': 0, 'sendfile': 0}
