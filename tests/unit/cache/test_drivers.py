"""The driver contract, run against every driver (sqlite and xattr)."""

import os
import time
import uuid

import pytest

from glance_cache.cache import drivers, evictor


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
