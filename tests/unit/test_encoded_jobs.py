"""Unit tests of EncodedJobs: the JSON of GET /v2/cache/jobs, finished jobs kept."""

import json
import random

from glance_cache.api import cache as cache_api
from glance_cache.cache import queue as job_queue


def image_id(n):
    return '00000000-0000-4000-8000-%012d' % n


def expected(records, live, pinned, is_cached, state):
    """The listing as built before anything was kept: a view per record, encoded at once."""
    views = [cache_api._job_view(r, live, pinned, is_cached) for r in records
             if cache_api._current(r, is_cached)]
    return json.dumps([v for v in views if state is None or v['state'] == state])


def test_a_finished_job_is_encoded_again_only_when_its_view_changes(monkeypatch):
    encoded = cache_api.EncodedJobs()
    records = [dict(job_queue.new_record(image_id(n), 10, 'n1'), state=job_queue.CACHED,
                    finished_at=1.5) for n in range(3)]
    cached = {r['image_id'] for r in records}
    encodings = []
    real_dumps = json.dumps
    monkeypatch.setattr(cache_api.json, 'dumps',
                        lambda value: encodings.append(value) or real_dumps(value))
    first = encoded.encode(records, {}, set(), cached.__contains__, every_job=True)
    assert len(encodings) == 3
    del encodings[:]
    assert encoded.encode(records, {}, set(), cached.__contains__, every_job=True) == first
    assert encodings == []
    # Pinned now: its view says so.
    text = encoded.encode(records, {}, {image_id(1)}, cached.__contains__, every_job=True)
    assert [v['image_id'] for v in encodings] == [image_id(1)]
    assert [job['pinned'] for job in json.loads(text)] == [False, True, False]


def test_listings_always_equal_the_views_encoded_at_once():
    """Random changes of records, pins, the cache and the query: the text is always
    the one the views encoded afresh give."""
    rng = random.Random(7)
    encoded = cache_api.EncodedJobs()
    records = {}
    pinned, cached = set(), set()
    for step in range(400):
        n = rng.randrange(15)
        key = image_id(n)
        change = rng.randrange(6)
        if change == 0:
            records.pop(key, None)
        elif change <= 2:
            record = records.setdefault(key, job_queue.new_record(key, 100, 'n1'))
            record.update(state=rng.choice(job_queue.STATES), bytes_done=rng.randrange(100),
                          finished_at=rng.choice((None, 1.0, 2.5)),
                          attempts=rng.randrange(3),
                          last_error=rng.choice((None, 'boom', 'stalled')))
        elif change == 3:
            pinned ^= {key}
        else:
            cached ^= {key}
        live = {key: rng.randrange(100)} if rng.random() < 0.3 else {}
        state = rng.choice((None,) + job_queue.STATES)
        every_job = state not in job_queue.PENDING
        listed = sorted(records.values(), key=lambda r: r['image_id'])
        if not every_job:
            listed = [r for r in listed if r['state'] in job_queue.PENDING]
        listed = [dict(r) for r in listed]   # as the queue gives them: copies
        text = encoded.encode(listed, live, pinned, cached.__contains__, state, every_job)
        assert text == expected(listed, live, pinned, cached.__contains__, state), step
