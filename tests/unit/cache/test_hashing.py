"""HashPipeline and digester.py: digests computed inline, in threads and in processes."""

import doctest
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import uuid

import pytest

from glance_cache.cache import cpus, digester, fill, hashing
from tests.unit.cache.conftest import image_for

BIG = hashing.INLINE_HASH_LIMIT + 12345
MIB = 1024 * 1024


def test_doctests():
    for module in (digester, cpus, fill):
        assert doctest.testmod(module).failed == 0


def _pipeline_over_file(tmp_path, data, chunk, expected_size=None, with_fd=True,
                        confinement=cpus.UNCONFINED):
    """Write ``data`` to a file chunk by chunk, as a fill does, hashing beside it."""
    path = tmp_path / 'incomplete'
    write_fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    read_fd = os.open(path, os.O_RDONLY)
    try:
        pipeline = hashing.HashPipeline('sha512', expected_size,
                                        read_fd if with_fd else None, confinement)
        kinds = {type(d) for d in pipeline._digests.values()}
        for i in range(0, len(data), chunk):
            piece = data[i:i + chunk]
            os.write(write_fd, piece)
            pipeline.update(piece)
        return pipeline.finish(), kinds
    finally:
        os.close(write_fd)
        os.close(read_fd)


@pytest.mark.parametrize('expected_size, with_fd, kind', [
    (BIG, True, hashing._ProcessDigest),
    (None, True, hashing._ProcessDigest),
    (BIG, False, hashing._ThreadDigest),
    (1000, True, hashing._InlineDigest),
])
def test_every_way_gives_the_same_digests(tmp_path, expected_size, with_fd, kind):
    data = os.urandom(expected_size or BIG)
    (size, md5_hex, sha_hex), kinds = _pipeline_over_file(tmp_path, data, 100_003,
                                                         expected_size, with_fd)
    assert kinds == {kind}
    assert (size, md5_hex, sha_hex) == (len(data), hashlib.md5(data).hexdigest(),
                                        hashlib.sha512(data).hexdigest())


def test_process_digests_hash_what_the_file_holds(tmp_path):
    # The processes read the file back: bytes changed on disk after the
    # write are what they hash, so a corrupted write is caught.
    data = bytearray(os.urandom(BIG))
    path = tmp_path / 'incomplete'
    write_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pipeline = hashing.HashPipeline('sha512', len(data), write_fd)
        os.write(write_fd, data)
        os.pwrite(write_fd, b'\0', 5)
        pipeline.update(bytes(data))
        _, md5_hex, _ = pipeline.finish()
    finally:
        os.close(write_fd)
    data[5] = 0
    assert md5_hex == hashlib.md5(data).hexdigest()


def test_digester_takes_counts_split_across_reads(tmp_path):
    data = os.urandom(300_000)
    path = tmp_path / 'f'
    path.write_bytes(data)
    read, write = os.pipe()
    counts = b''.join(n.to_bytes(digester.COUNT, 'little')
                      for n in (1, 70_000, 300_000)) + digester.END

    def feed():
        # Byte by byte: every message arrives in pieces.
        for i in range(len(counts)):
            os.write(write, counts[i:i + 1])
        os.close(write)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with open(path, 'rb') as f:
        result = digester.digest(f.fileno(), 'sha512', read)
    feeder.join()
    os.close(read)
    assert result == (hashlib.sha512(data).hexdigest(), len(data))


def test_digester_reads_where_the_file_cannot_be_mapped(tmp_path, monkeypatch):
    def no_mapping(*args, **kwargs):
        raise OSError(19, 'No such device')  # what mmap says on such file systems

    monkeypatch.setattr(digester.mmap, 'mmap', no_mapping)
    data = os.urandom(digester.WINDOW + 4321)
    path = tmp_path / 'f'
    path.write_bytes(data)
    read, write = os.pipe()
    os.write(write, (len(data) - 1).to_bytes(digester.COUNT, 'little'))
    os.write(write, len(data).to_bytes(digester.COUNT, 'little') + digester.END)
    os.close(write)
    with open(path, 'rb') as f:
        result = digester.digest(f.fileno(), 'md5', read)
    os.close(read)
    assert result == (hashlib.md5(data).hexdigest(), len(data))


def test_digester_refuses_more_than_the_file_holds(tmp_path):
    path = tmp_path / 'f'
    path.write_bytes(b'abc')
    with open(path, 'rb') as f:
        proc = subprocess.run(
            [sys.executable, '-I', '-S', hashing.DIGESTER, str(f.fileno()), 'md5', '0'],
            input=(10).to_bytes(digester.COUNT, 'little') + digester.END, capture_output=True,
            pass_fds=(f.fileno(),))
    assert proc.returncode == 1
    assert b'holds 3 bytes, not the 10 announced' in proc.stderr


def test_a_digester_whose_fill_died_stops_within_a_window(tmp_path):
    # Its input ends without END, as when the server is killed mid-fill:
    # it must not go on hashing the rest of what was announced.
    path = tmp_path / 'f'
    path.write_bytes(os.urandom(4 * digester.WINDOW))
    with open(path, 'rb') as f:
        proc = subprocess.run(
            [sys.executable, '-I', '-S', hashing.DIGESTER, str(f.fileno()), 'md5', '0'],
            input=(4 * digester.WINDOW).to_bytes(digester.COUNT, 'little'),
            capture_output=True, pass_fds=(f.fileno(),))
    assert proc.returncode == 1
    assert b'without its end' in proc.stderr
    hashed = int(re.search(rb'(\d+) bytes hashed', proc.stderr).group(1))
    assert hashed <= digester.WINDOW


@pytest.fixture
def process_pipeline(tmp_path):
    """``(HashPipeline with digest processes, the descriptor they read)``;
    whatever of it is left is stopped at the end."""
    fd = os.open(tmp_path / 'incomplete', os.O_RDWR | os.O_CREAT, 0o600)
    pipeline = None
    try:
        pipeline = hashing.HashPipeline('sha512', BIG, fd)
        yield pipeline, fd
    finally:
        if pipeline is not None:
            pipeline.abort()
        os.close(fd)


def test_a_digest_process_that_dies_fails_the_pipeline_with_its_status(process_pipeline):
    pipeline, fd = process_pipeline
    os.write(fd, b'x' * 1000)
    pipeline.update(b'x' * 1000)
    victim = pipeline._digests['md5']._proc
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    with pytest.raises(hashing.DigestError,
                       match=r'md5 digest process of the fill failed \(killed by signal 9\)'):
        # The next announcement finds the pipe closed, or the end finds the status.
        pipeline.update(b'x' * 1000)
        pipeline.finish()
    assert pipeline._digests == {}


def test_abort_stops_and_reaps_the_processes(process_pipeline):
    pipeline, _ = process_pipeline
    procs = [d._proc for d in pipeline._digests.values()]
    pipeline.abort()
    pipeline.abort()
    assert all(p.returncode is not None for p in procs)


def test_interrupt_ends_a_finish_waiting_for_stopped_digests(process_pipeline):
    pipeline, fd = process_pipeline
    procs = [d._proc for d in pipeline._digests.values()]
    for proc in procs:
        proc.send_signal(signal.SIGSTOP)   # as starved of CPU: never done
    os.write(fd, b'x' * 1000)
    pipeline.update(b'x' * 1000)
    outcome = []

    def finish():
        try:
            outcome.append(pipeline.finish())
        except hashing.DigestError as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=finish)
    waiting.start()
    pipeline.interrupt()
    waiting.join(30)
    assert not waiting.is_alive(), 'finish() still waits for the stopped digests'
    assert isinstance(outcome[0], hashing.DigestError), outcome
    assert 'killed by signal 9' in str(outcome[0])
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    pipeline.interrupt()   # once they are gone, a no-op


def test_a_large_fill_with_bad_data_is_caught_by_the_process_digests(cache_factory):
    cache = cache_factory()
    data = os.urandom(BIG)
    image = image_for(data, str(uuid.uuid4()))
    bad = data[:-1] + bytes([data[-1] ^ 1])
    job, _ = cache.begin_fill(image)
    job.run(lambda: (bad[i:i + MIB] for i in range(0, len(bad), MIB)))
    assert job.state == job.FAILED and 'checksum mismatch' in job.error
    assert cache.get(image['id']) is None
    assert os.listdir(cache.invalid_dir) == [image['id']]


def test_a_large_fill_commits(cache_factory):
    cache = cache_factory()
    data = os.urandom(BIG)
    image = image_for(data, str(uuid.uuid4()))
    job, _ = cache.begin_fill(image)
    job.run(lambda: (data[i:i + MIB] for i in range(0, len(data), MIB)))
    assert job.state == job.DONE, job.error
    cached = cache.open(image['id'])
    try:
        assert hashlib.sha512(cached.read()).hexdigest() == image['os_hash_value']
    finally:
        cached.close()


@pytest.mark.parametrize('expected_size, with_fd, reads_file', [
    (BIG, True, True), (None, True, True), (BIG, False, False), (1000, True, False)])
def test_only_digests_that_read_the_file_can_advance_without_the_bytes(
        tmp_path, expected_size, with_fd, reads_file):
    data = os.urandom(expected_size or BIG)
    path = tmp_path / 'incomplete'
    path.write_bytes(data)
    read_fd = os.open(path, os.O_RDONLY)
    try:
        pipeline = hashing.HashPipeline('sha512', expected_size,
                                        read_fd if with_fd else None)
        assert pipeline.reads_file is reads_file
        if not reads_file:
            with pytest.raises(ValueError):
                pipeline.advance(len(data))
            pipeline.abort()
            return
        pipeline.advance(len(data) - 5)
        pipeline.advance(5)
        assert pipeline.finish() == (len(data), hashlib.md5(data).hexdigest(),
                                     hashlib.sha512(data).hexdigest())
    finally:
        os.close(read_fd)
