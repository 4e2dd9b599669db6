"""The driver contract, run against every driver (sqlite and xattr)."""

import concurrent.futures
import os
import sqlite3
import time
import uuid

import pytest

from glance_cache.cache import drivers, evictor
from glance_cache.cache.drivers import sqlite as sqlite_driver


@pytest.fixture
def driver(tmp_path, driver_name):
    d = drivers.load(driver_name, str(tmp_path))
    yield d
    d.close()


def _commit(driver, size=10):
    image_id = str(uuid.uuid4())
    tmp = os.path.join(driver.cache_dir, 'tmp-' + image_id)
    with open(tmp, 'wb') as f:
        f.write(b'x' * size)
    driver.before_commit(tmp, image_id, size)
    os.rename(tmp, os.path.join(driver.cache_dir, image_id))
    driver.after_commit(image_id, size)
    return image_id


def test_committed_entry_is_listed_with_fresh_times(driver):
    before = time.time()
    image_id = _commit(driver, 10)
    entry = driver.get(image_id)
    assert entry.image_id == image_id and entry.size == 10 and entry.hits == 0
    assert before <= entry.last_modified <= time.time()
    assert entry.last_accessed == entry.last_modified
    assert [e.image_id for e in driver.list()] == [image_id]
    assert driver.total_size() == 10


def test_unknown_entry_is_none(driver):
    assert driver.get(str(uuid.uuid4())) is None
    assert driver.list() == [] and driver.total_size() == 0


def test_hit_counts_and_moves_last_access(driver):
    image_id = _commit(driver)
    first = driver.get(image_id)
    driver.hit(image_id)
    driver.hit(image_id)
    entry = driver.get(image_id)
    assert entry.hits == 2
    assert entry.last_accessed >= first.last_accessed
    assert entry.last_modified == first.last_modified


def test_hit_makes_an_entry_the_last_to_evict(driver):
    a, b, c = _commit(driver), _commit(driver), _commit(driver)
    driver.hit(a)
    in_eviction_order = sorted(driver.list(), key=evictor.EVICTION_ORDER['lru'])
    assert in_eviction_order[-1].image_id == a
    assert {e.image_id for e in driver.list()} == {a, b, c}


def test_forget_after_unlink(driver):
    image_id = _commit(driver)
    os.unlink(os.path.join(driver.cache_dir, image_id))
    driver.forget(image_id)
    assert driver.get(image_id) is None
    assert driver.list() == []


def test_hit_on_missing_entry_is_harmless(driver):
    driver.hit(str(uuid.uuid4()))
    assert driver.list() == []


def test_reconcile_adopts_files_and_drops_orphans(driver):
    kept = _commit(driver, 7)
    gone = _commit(driver, 3)
    os.unlink(os.path.join(driver.cache_dir, gone))
    adopted = str(uuid.uuid4())
    with open(os.path.join(driver.cache_dir, adopted), 'wb') as f:
        f.write(b'y' * 5)
    driver.reconcile({kept: 7, adopted: 5})
    assert {e.image_id: e.size for e in driver.list()} == {kept: 7, adopted: 5}
    assert driver.total_size() == 12


def test_version_changes_with_every_change_in_any_process(driver, tmp_path, driver_name):
    """version() is None (cannot tell) or differs after each change, whoever made it."""
    other = drivers.load(driver_name, str(tmp_path))   # as another process would
    try:
        if driver.version() is None:
            assert other.version() is None
            return
        seen = [driver.version()]

        def changed():
            now = driver.version()
            assert now not in seen
            seen.append(now)

        image_id = _commit(driver)
        changed()
        driver.hit(image_id)
        changed()
        other.hit(image_id)
        changed()
        other_id = _commit(other)
        changed()
        assert driver.version() == seen[-1]   # and stays put while nothing changes
        other.forget(other_id)
        changed()
        driver.forget(image_id)
        changed()
    finally:
        other.close()


def test_changes_bring_an_earlier_view_up_to_date(driver, tmp_path, driver_name):
    """changes(mark) applied to what an earlier call gave equals list(), always."""
    other = drivers.load(driver_name, str(tmp_path))   # as another process would
    view, mark = {}, None

    def caught_up():
        nonlocal view, mark
        mark, entries, complete = driver.changes(mark)
        if complete:
            view = {}
        view.update((e.image_id, e) for e in entries)
        assert view == {e.image_id: e for e in driver.list()}
        return entries, complete

    try:
        assert caught_up() == ([], True)
        a, b = _commit(driver), _commit(other)
        caught_up()
        other.hit(a)
        entries, complete = caught_up()
        if not complete:   # a driver that counts changes gives only the one hit
            assert [e.image_id for e in entries] == [a]
            assert caught_up() == ([], False)
        os.unlink(os.path.join(driver.cache_dir, b))
        other.forget(b)
        entries, complete = caught_up()
        assert complete and b not in view
        driver.hit(a)
        c = _commit(other)
        caught_up()
        assert set(view) == {a, c} and view[a].hits == 2
    finally:
        other.close()


def test_sqlite_cache_db_from_before_change_counting_is_upgraded(tmp_path):
    """A cache.db without the seq column keeps its rows and counts changes from then on."""
    image_id = str(uuid.uuid4())
    conn = sqlite3.connect(str(tmp_path / sqlite_driver.DB_NAME))
    conn.execute('CREATE TABLE cached_images (image_id TEXT PRIMARY KEY, size INTEGER NOT NULL, '
                 'hits INTEGER NOT NULL DEFAULT 0, last_accessed REAL NOT NULL, '
                 'last_modified REAL NOT NULL)')
    conn.execute('INSERT INTO cached_images VALUES (?, 10, 3, 1796000000.5, 1796000000.25)',
                 (image_id,))
    conn.commit()
    conn.close()
    driver = drivers.load('sqlite', str(tmp_path))
    again = drivers.load('sqlite', str(tmp_path))   # a second process starting: no error
    try:
        assert driver.get(image_id).hits == 3
        mark, entries, complete = driver.changes(None)
        assert complete and [e.image_id for e in entries] == [image_id]
        again.hit(image_id)
        mark, entries, complete = driver.changes(mark)
        assert not complete and [(e.image_id, e.hits) for e in entries] == [(image_id, 4)]
    finally:
        driver.close()
        again.close()


def test_sqlite_reads_do_not_wait_for_a_write_in_progress(tmp_path):
    """A request asking for an entry is answered from the last commit while
    the worker's write is open (before, it waited for the write to end)."""
    driver = drivers.load('sqlite', str(tmp_path))
    try:
        image_id = _commit(driver, 10)
        pool = concurrent.futures.ThreadPoolExecutor(1)
        # The write path's own lock and transaction, held open with a change
        # not yet committed.
        with driver._lock, driver._transaction('BEGIN IMMEDIATE') as conn:
            conn.execute('DELETE FROM cached_images')
            entry = pool.submit(driver.get, image_id).result(timeout=10)
            listed = pool.submit(driver.list).result(timeout=10)
            mark, changed, complete = pool.submit(driver.changes, None).result(timeout=10)
            total = pool.submit(driver.total_size).result(timeout=10)
        pool.shutdown()
        assert entry.size == 10 and [e.image_id for e in listed] == [image_id]
        assert complete and [e.image_id for e in changed] == [image_id] and total == 10
        # The write, once committed, is what the next read sees.
        assert driver.get(image_id) is None and driver.list() == []
    finally:
        driver.close()


def test_sqlite_reader_connections_cannot_write(tmp_path):
    driver = drivers.load('sqlite', str(tmp_path))
    try:
        with driver._reader() as conn:
            with pytest.raises(sqlite3.OperationalError):
                conn.execute('DELETE FROM cached_images')
    finally:
        driver.close()
