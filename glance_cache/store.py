"""The seam over glance_store: add, get (with offset and length) and delete.

glance_store keeps its stores in module state; ``ImageStore`` configures them
once per process and maps glance_store's exceptions to ours, so no other
module imports glance_store.
"""

import logging

import glance_store
from glance_store import exceptions as store_exc

try:
    # The filesystem driver's reader; private to glance_store, so a release may
    # move it. Without it fills copy through Python (see local_descriptor).
    from glance_store._drivers.filesystem import ChunkedFile as _FileReader
except ImportError:
    _FileReader = None

from glance_cache import errors

LOG = logging.getLogger(__name__)

HASH_ALGO = 'sha512'


class StoreDataMissing(errors.NotFound):
    """The image record points at data the store no longer has."""


class ImageStore:
    """Image data in the configured glance_store backend."""

    hash_algo = HASH_ALGO

    def __init__(self, conf):
        self.conf = conf
        glance_store.create_stores(conf)
        # glance_store.verify_default_store() reads the global cfg.CONF; check
        # the configuration we were given instead.
        default = conf.glance_store.default_store
        try:
            glance_store.get_store_from_scheme(default)
        except store_exc.UnknownScheme:
            raise RuntimeError('[glance_store] default_store %r is not an available store'
                               % default) from None

    def add(self, image_id, reader, size):
        """Write ``reader``'s bytes as the data of ``image_id``.

        ``size`` is the expected length, or 0 when unknown. Returns
        ``(location, size, md5_hex, sha512_hex)``. On any failure nothing is
        left in the store.
        """
        try:
            location, written, checksum, multihash, _meta = (
                glance_store.add_to_backend_with_multihash(
                    self.conf, image_id, reader, size, HASH_ALGO))
        except store_exc.Invalid as exc:
            raise errors.BadRequest(str(exc.msg if hasattr(exc, 'msg') else exc)) from None
        except store_exc.StorageFull:
            raise errors.RequestEntityTooLarge('The image store is full') from None
        except store_exc.Duplicate:
            raise errors.Conflict('The store already holds data for image %s' % image_id) \
                from None
        except store_exc.StorageWriteDenied:
            raise errors.ServiceUnavailable('The image store refused the write') from None
        return location, written, checksum, multihash

    def get(self, location, offset=0, length=None):
        """An iterator over the data at ``location`` from ``offset``, and its size.

        Stores that cannot start mid-image (http) are read from the start and
        the bytes before ``offset`` skipped.
        """
        try:
            try:
                return glance_store.get_from_backend(location, offset=offset,
                                                     chunk_size=length)
            except store_exc.StoreRandomGetNotSupported:
                data, size = glance_store.get_from_backend(location)
                return _byte_range(data, offset, length), size
        except store_exc.NotFound:
            raise StoreDataMissing('The image data is missing from the store') from None

    @staticmethod
    def local_descriptor(data):
        """The descriptor of the local file behind ``data``, or None.

        ``data`` is what ``get`` returned. For the whole of an image in the
        filesystem store it is glance_store's reader over the file it opened,
        nothing read yet: the descriptor is then at the first byte, and a
        fill may copy the file from there without passing its bytes through
        Python. Closing ``data`` closes the descriptor. None for other stores,
        a byte range, or data already read from.
        """
        # glance_store's reader keeps these attributes to itself: should a
        # release rename them, fills go back to reading through Python.
        if _FileReader is None or type(data) is not _FileReader \
                or getattr(data, 'partial', True):
            return None
        fp = getattr(data, 'fp', None)
        if fp is None or fp.closed or fp.tell() != 0:
            return None
        return fp.fileno()

    def delete(self, location):
        """Delete the data at ``location``; data already gone is not an error.

        Neither is a store that cannot delete (the http store is read-only):
        the image record is gone by then, so failing would only turn a done
        deletion into a 500. The data stays where it is, as in Glance.
        """
        try:
            glance_store.delete_from_backend(location)
        except store_exc.NotFound:
            LOG.info('Data at %s was already gone', location)
        except store_exc.StoreDeleteNotSupported:
            LOG.warning('The store of %s cannot delete; its data stays there', location)


def _byte_range(chunks, offset, length):
    """The bytes of ``chunks`` from ``offset``, ``length`` of them (None: to the end)."""
    position = 0
    end = None if length is None else offset + length
    try:
        for chunk in chunks:
            start, stop = position, position + len(chunk)
            position = stop
            if stop <= offset:
                continue
            piece = chunk[max(offset - start, 0):(len(chunk) if end is None
                                                  else max(min(end - start, len(chunk)), 0))]
            if piece:
                yield piece
            if end is not None and stop >= end:
                return
    finally:
        close = getattr(chunks, 'close', None)
        if close is not None:
            close()
