"""Unit tests of the upload reader and the Range parser."""

import io

import pytest

from glance_cache import errors
from glance_cache.api import image_data


@pytest.mark.parametrize('header, expected', [
    ('bytes=0-9', (0, 9)),
    ('bytes=5-', (5, 99)),
    ('bytes=-10', (90, 99)),
    ('bytes=-1000', (0, 99)),
    ('bytes=90-1000', (90, 99)),
    (' bytes=1-1 ', (1, 1)),
    ('bytes=-', None),
    ('bytes=1-2,4-5', None),
    ('pages=1-2', None),
])
def test_parse_range(header, expected):
    assert image_data._parse_range(header, 100) == expected


@pytest.mark.parametrize('header', ['bytes=100-', 'bytes=-0', 'bytes=9-3'])
def test_unsatisfiable_ranges(header):
    with pytest.raises(errors.RangeNotSatisfiable) as info:
        image_data._parse_range(header, 100)
    assert info.value.headers['Content-Range'] == 'bytes */100'


def test_upload_reader_counts_and_passes_data():
    reader = image_data.UploadReader(io.BytesIO(b'abcdef'), cap=10, declared=None)
    assert reader.read(4) == b'abcd'
    assert reader.read(4) == b'ef'
    assert reader.read(4) == b''
    assert reader.bytes_read == 6


def test_upload_reader_stops_at_cap():
    reader = image_data.UploadReader(io.BytesIO(b'x' * 20), cap=10, declared=None)
    reader.read(8)
    with pytest.raises(errors.RequestEntityTooLarge):
        reader.read(8)


def test_upload_reader_stops_past_declared_size():
    reader = image_data.UploadReader(io.BytesIO(b'x' * 20), cap=100, declared=5)
    with pytest.raises(errors.BadRequest):
        reader.read(8)


def test_upload_reader_turns_io_errors_into_400():
    class Broken:
        def read(self, size):
            raise OSError('connection reset')

    with pytest.raises(errors.BadRequest):
        image_data.UploadReader(Broken(), cap=10, declared=None).read(1)
