"""BurstHold: when the drainer starts its next job while new jobs arrive."""

import pytest

from glance_cache.cache.worker import BurstHold


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def hold(clock):
    return BurstHold(0.25, gap=0.02, clock=clock)


def test_nothing_queued_or_a_lone_job_starts_at_once(hold, clock):
    assert hold.delay(clock.now) == 0
    hold.arrived()
    assert hold.delay(clock.now) == 0


def test_jobs_that_each_start_before_the_next_arrives_are_not_held(hold, clock):
    for _ in range(5):
        hold.arrived()
        assert hold.delay(clock.now) == 0
        hold.started()
        clock.now += 0.001


def test_a_burst_holds_the_next_start_until_a_pause_of_gap(hold, clock):
    since = clock.now
    hold.arrived()
    clock.now += 0.005
    hold.arrived()
    assert hold.delay(since) == pytest.approx(0.02)
    clock.now += 0.015
    assert hold.delay(since) == pytest.approx(0.005)
    clock.now += 0.005
    assert hold.delay(since) == 0


def test_each_arrival_restarts_the_pause(hold, clock):
    since = clock.now
    hold.arrived()
    for _ in range(4):
        hold.arrived()
        clock.now += 0.01
        assert hold.delay(since) == pytest.approx(0.01)


def test_a_burst_without_end_holds_no_start_longer_than_max_hold(hold, clock):
    since = clock.now
    hold.arrived()
    while clock.now < since + 0.24:
        hold.arrived()
        assert 0 < hold.delay(since) <= 0.02
        clock.now += 0.01
    hold.arrived()
    assert hold.delay(since) == pytest.approx(since + 0.25 - clock.now)
    clock.now = since + 0.25
    hold.arrived()
    assert hold.delay(since) == 0
    # That start leaves the rest of the burst waiting, and the next hold
    # counts from when a drainer came back for a job.
    hold.started()
    hold.arrived()
    assert hold.delay(clock.now) == pytest.approx(0.02)


def test_one_start_among_many_waiting_keeps_the_others_held(hold, clock):
    """With several draining threads, one let go by max_hold does not let go the rest."""
    for _ in range(5):
        hold.arrived()
    hold.started()
    hold.started()
    assert hold.delay(clock.now) == pytest.approx(0.02)
    hold.started()
    hold.started()
    assert hold.delay(clock.now) == 0


def test_an_empty_queue_resets_the_count(hold, clock):
    """Jobs counted but never started (removed before their turn) do not
    make the next lone one wait."""
    hold.arrived()
    hold.arrived()
    hold.idle()
    hold.arrived()
    assert hold.delay(clock.now) == 0


def test_a_max_hold_of_zero_holds_nothing(clock):
    hold = BurstHold(0, gap=0.02, clock=clock)
    for _ in range(10):
        hold.arrived()
    assert hold.delay(clock.now) == 0
