"""Fixtures of the functional tests."""

import pytest

from tests.functional import faulty_store


@pytest.fixture(scope='module')
def store():
    """A FaultyStore: an HTTP image store whose answers each test plans."""
    s = faulty_store.FaultyStore()
    yield s
    s.close()
