"""The byte-range reader used for stores that cannot read from an offset."""

import pytest

from glance_cache import store


@pytest.mark.parametrize('offset, length', [(0, None), (0, 10), (3, 4), (5, None), (9, 1),
                                            (2, 100), (4, 3), (0, 1)])
def test_byte_range_matches_slicing(offset, length):
    data = b'abcdefghij'
    chunks = [data[0:3], data[3:4], data[4:8], data[8:10]]
    end = None if length is None else offset + length
    assert b''.join(store._byte_range(iter(chunks), offset, length)) == data[offset:end]


def test_byte_range_closes_its_source():
    class Source:
        closed = False

        def __iter__(self):
            yield b'abc'
            yield b'def'

        def close(self):
            self.closed = True

    source = Source()
    assert b''.join(store._byte_range(source, 1, 2)) == b'bc'
    assert source.closed
