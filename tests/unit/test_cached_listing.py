"""Unit tests of CachedListing: the encoded entries of GET /v2/cache."""

import json

import pytest

from glance_cache.api import cache as cache_api
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
        self.changes = 0
        self.lists = 0

    def change(self, entries):
        self.entries = list(entries)
        self.changes += 1

    def version(self):
        return self.changes if self.versioned else None

    def list(self):
        self.lists += 1
        return list(self.entries)


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
    assert set(listing._encoded) == set(current)


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
