"""Unit tests of CachedListing: the encoded entries of GET /v2/cache."""

import json
import os
import random

import pytest

from glance_cache.api import cache as cache_api
from glance_cache.cache import drivers
from glance_cache.cache.drivers import base


def entry(n, hits=0, accessed=None):
    accessed = 1796000000.123456 + n if accessed is None else accessed
    return base.CacheEntry('00000000-0000-4000-8000-%012d' % n, 1000 + n, hits,
                           accessed, 1796000000.654321 + n)


class FakeCache:
    """Entries and a version, as the cache drivers give them."""

    def __init__(self, entries, versioned=True):
        self.entries = list(entries)
        self.versioned = versioned
        self.changed = 0
        self.lists = 0

    def change(self, entries):
        self.entries = list(entries)
        self.changed += 1

    def version(self):
        return self.changed if self.versioned else None

    def list(self):
        self.lists += 1
        return list(self.entries)

    def changes(self, since):
        # As a driver that keeps no count of changes: every entry, each time.
        return None, self.list(), True


def plain_encoding(entries):
    """What GET /v2/cache sent before any reuse: one json.dumps of it all."""
    return json.dumps([{'image_id': e.image_id, 'hits': e.hits,
                        'last_accessed': e.last_accessed,
                        'last_modified': e.last_modified, 'size': e.size}
                       for e in entries])


@pytest.fixture
def encodings(monkeypatch):
    """The entries encoded one by one, in order."""
    seen = []
    original = cache_api._encode_entry

    def counting(e):
        seen.append(e.image_id)
        return original(e)

    monkeypatch.setattr(cache_api, '_encode_entry', counting)
    return seen


@pytest.mark.parametrize('count', [0, 1, 3, 50])
def test_the_text_is_exactly_what_one_json_dumps_gives(count):
    entries = [entry(n) for n in range(count)]
    text, ids = cache_api.CachedListing().get(FakeCache(entries))
    assert text == plain_encoding(entries)
    assert ids == frozenset(e.image_id for e in entries)


def test_an_unchanged_cache_is_not_read_again():
    cache = FakeCache([entry(n) for n in range(3)])
    listing = cache_api.CachedListing()
    first = listing.get(cache)
    assert listing.get(cache) == first
    assert cache.lists == 1


@pytest.mark.parametrize('versioned', [True, False])
def test_a_hit_reencodes_only_the_entry_it_changed(encodings, versioned):
    entries = [entry(n) for n in range(20)]
    cache = FakeCache(entries, versioned)
    listing = cache_api.CachedListing()
    listing.get(cache)
    assert len(encodings) == 20
    del encodings[:]

    entries[7] = entry(7, hits=1, accessed=1796000999.5)
    cache.change(entries)
    text, _ = listing.get(cache)

    assert encodings == [entries[7].image_id]
    assert text == plain_encoding(entries)
    assert json.loads(text)[7]['hits'] == 1


def test_entries_added_and_removed(encodings):
    cache = FakeCache([entry(n) for n in range(5)])
    listing = cache_api.CachedListing()
    listing.get(cache)
    del encodings[:]

    current = [entry(n) for n in (0, 2, 4, 5, 6)]
    cache.change(current)
    text, ids = listing.get(cache)

    assert encodings == [entry(5).image_id, entry(6).image_id]
    assert text == plain_encoding(current)
    assert ids == frozenset(e.image_id for e in current)
    # Entries gone from the cache are forgotten, not kept for ever.
    assert set(listing._encoded) == {e.image_id for e in current}


def test_an_entry_back_with_its_old_values_is_listed_as_it_is_now():
    old = entry(1)
    cache = FakeCache([old])
    listing = cache_api.CachedListing()
    listing.get(cache)
    newer = entry(1, hits=2, accessed=1796000500.25)
    cache.change([newer])
    listing.get(cache)
    cache.change([old])   # evicted and cached again with the same values
    assert listing.get(cache)[0] == plain_encoding([old])


# The sqlite driver counts its changes: after one, only that entry is read.

def _commit(driver, image_id, size=10):
    with open(os.path.join(driver.cache_dir, image_id), 'wb') as f:
        f.write(b'x' * size)
    driver.after_commit(image_id, size)


def _listed(text, driver):
    """The listing's entries and the driver's, each as image id -> entry."""
    listed = {e['image_id']: base.CacheEntry(e['image_id'], e['size'], e['hits'],
                                             e['last_accessed'], e['last_modified'])
              for e in json.loads(text)}
    assert len(listed) == len(json.loads(text))   # no entry twice
    return listed, {e.image_id: e for e in driver.list()}


@pytest.fixture
def two_processes(tmp_path):
    """Two sqlite drivers on one cache directory, as two server processes have."""
    this, other = (drivers.load('sqlite', str(tmp_path)) for _ in range(2))
    yield this, other
    this.close()
    other.close()


class CountingDriver:
    """A driver whose changes() answers are recorded."""

    def __init__(self, driver):
        self.driver = driver
        self.answers = []

    def version(self):
        return self.driver.version()

    def changes(self, since):
        answer = self.driver.changes(since)
        self.answers.append(answer)
        return answer


def _listed_once(driver, count):
    """``count`` entries committed through ``driver`` and listed once: (their
    ids, the driver wrapped to count its changes() answers, the listing)."""
    ids = ['00000000-0000-4000-8000-%012d' % n for n in range(count)]
    for image_id in ids:
        _commit(driver, image_id)
    counting = CountingDriver(driver)
    listing = cache_api.CachedListing()
    listing.get(counting)
    return ids, counting, listing


def test_after_a_hit_in_another_process_only_that_entry_is_read(two_processes, encodings):
    this, other = two_processes
    ids, counting, listing = _listed_once(this, 30)
    del encodings[:]

    other.hit(ids[12])
    text, listed_ids = listing.get(counting)

    _, changed, complete = counting.answers[-1]
    assert not complete and [e.image_id for e in changed] == [ids[12]]
    assert encodings == [ids[12]]
    listed, current = _listed(text, this)
    assert listed == current and listed[ids[12]].hits == 1
    assert listed_ids == frozenset(ids)
    # The entry keeps its place in the listing.
    assert [e['image_id'] for e in json.loads(text)] == ids


def test_a_removal_reads_every_entry_again(two_processes):
    this, other = two_processes
    ids, counting, listing = _listed_once(this, 5)

    os.unlink(os.path.join(this.cache_dir, ids[3]))
    other.forget(ids[3])
    other.hit(ids[1])
    text, listed_ids = listing.get(counting)

    assert counting.answers[-1][2]   # complete
    listed, current = _listed(text, this)
    assert listed == current and ids[3] not in listed and listed[ids[1]].hits == 1
    assert listed_ids == frozenset(current)


def test_the_listing_follows_any_sequence_of_changes(two_processes):
    """Commits, re-commits, hits and removals from either process, at random."""
    this, other = two_processes
    rng = random.Random(20261201)
    pool = ['00000000-0000-4000-8000-%012d' % n for n in range(12)]
    listing = cache_api.CachedListing()
    for step in range(300):
        driver = rng.choice(two_processes)
        image_id = rng.choice(pool)
        action = rng.random()
        if action < 0.3:
            _commit(driver, image_id, rng.randrange(1, 100))
        elif action < 0.8:
            driver.hit(image_id)
        else:
            path = os.path.join(driver.cache_dir, image_id)
            if os.path.exists(path):
                os.unlink(path)
            driver.forget(image_id)
        if rng.random() < 0.5:
            text, ids = listing.get(this)
            listed, current = _listed(text, this)
            assert listed == current, 'step %d' % step
            assert ids == frozenset(current)
