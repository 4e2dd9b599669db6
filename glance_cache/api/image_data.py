"""Image data: upload (PUT /v2/images/{id}/file) and download (GET, with Range)."""

import hashlib
import logging
import re
import threading

from glance_cache import cache as cache_module
from glance_cache import errors, metrics
from glance_cache.api import common, images

LOG = logging.getLogger(__name__)

_RANGE = re.compile(r'^bytes=(\d*)-(\d*)$')


class UploadReader:
    """A file-like view of the request body that enforces the size limits.

    glance_store reads it with ``read(n)``; it stops the upload with 413 as
    soon as the body passes ``image_size_cap`` and with 400 as soon as it
    passes the declared size, so an oversized body is never stored whole.
    """

    def __init__(self, stream, cap, declared):
        self._stream = stream
        self._cap = cap
        self._declared = declared
        self.bytes_read = 0

    def read(self, size=-1):
        try:
            chunk = self._stream.read(size)
        except OSError as exc:
            raise errors.BadRequest('Reading the upload failed: %s' % exc) from None
        self.bytes_read += len(chunk)
        if self.bytes_read > self._cap:
            raise errors.RequestEntityTooLarge(
                'Image data exceeds the image size cap of %d bytes' % self._cap)
        if self._declared is not None and self.bytes_read > self._declared:
            raise errors.BadRequest('Image data is longer than the declared size %d'
                                    % self._declared)
        return chunk


def _declared_size(req, cap):
    header = req.headers.get('x-openstack-image-size')
    if header is None:
        return None
    try:
        size = int(header)
    except ValueError:
        raise errors.BadRequest('x-openstack-image-size must be a whole number') from None
    if size < 0:
        raise errors.BadRequest('x-openstack-image-size must not be negative')
    if size > cap:
        raise errors.RequestEntityTooLarge(
            'Declared size %d exceeds the image size cap of %d bytes' % (size, cap))
    return size


# A refused upload's unread body is read and dropped up to this many bytes,
# so that the client's connection stays usable; past it the server closes
# the connection after the answer (gunicorn drains only 64 KiB itself).
DISCARD_LIMIT = 4 * 1024 * 1024


def upload(req, image_id):
    """PUT /v2/images/{image_id}/file: 204 once the data is stored and hashed.

    The image goes queued -> saving -> active. Any failure returns it to
    queued with no data left in the store.
    """
    try:
        return _upload(req, image_id)
    except errors.GlanceCacheError:
        _discard_unread_body(req)
        raise


def _discard_unread_body(req):
    stream = _body_stream(req)
    left = DISCARD_LIMIT
    try:
        while left > 0:
            chunk = stream.read(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)
    except OSError:
        pass  # the client went away: nothing left to keep usable


def _upload(req, image_id):
    image = images.get_visible(req, image_id)
    svc = common.services(req)
    svc.policy.authorize(common.request_context(req), 'upload_image', svc.target(image))
    if req.content_type != 'application/octet-stream':
        raise errors.UnsupportedMediaType('Content-Type must be application/octet-stream, '
                                          'not %r' % (req.content_type or ''))
    cap = svc.conf.api.image_size_cap
    declared = _declared_size(req, cap)
    if req.content_length is not None:
        if req.content_length > cap:
            raise errors.RequestEntityTooLarge(
                'Content-Length %d exceeds the image size cap of %d bytes'
                % (req.content_length, cap))
        if declared is not None and declared != req.content_length:
            raise errors.BadRequest('x-openstack-image-size %d does not match '
                                    'Content-Length %d' % (declared, req.content_length))
        if declared is None:
            declared = req.content_length
    if image['status'] != 'queued':
        raise errors.Conflict('Image %s has status %s: data can be uploaded only to a '
                              'queued image' % (image['id'], image['status']))
    svc.db.image_update(image['id'], {'status': 'saving'}, expected_status='queued')
    reader = UploadReader(_body_stream(req), cap, declared)
    location = None
    try:
        location, size, checksum, multihash = svc.store.add(image['id'], reader,
                                                            declared or 0)
        if declared is not None and size != declared:
            raise errors.BadRequest('Image data is %d bytes, the declared size is %d'
                                    % (size, declared))
        svc.db.image_update(image['id'], {
            'status': 'active', 'size': size, 'checksum': checksum,
            'os_hash_algo': svc.store.hash_algo, 'os_hash_value': multihash,
            'location': location,
        }, expected_status='saving')
    except BaseException as exc:
        _abandon_upload(svc, image['id'], location, exc)
        if isinstance(exc, errors.NotFound):
            raise errors.Conflict('Image %s was deleted during the upload' % image['id']) \
                from None
        raise
    return common.empty_response()


class _Empty:
    def read(self, size=-1):
        return b''


def _body_stream(req):
    """The raw request body; chunked bodies count as readable whatever the server says.

    gunicorn marks chunked input with ``wsgi.input_terminated``; eventlet.wsgi
    does not, and webob would then treat the body as empty.
    """
    chunked = 'chunked' in req.headers.get('Transfer-Encoding', '').lower()
    if chunked or req.is_body_readable:
        return req.environ['wsgi.input']
    return _Empty()


def _abandon_upload(svc, image_id, location, exc):
    """Undo a failed upload: drop stored data and put the image back to queued."""
    LOG.warning('Upload of image %s failed: %s', image_id, exc)
    if location is not None:
        svc.store.delete(location)
    try:
        svc.db.image_update(image_id, {'status': 'queued'}, expected_status='saving')
    except errors.GlanceCacheError:
        pass  # deleted or changed meanwhile: nothing to put back


def _parse_range(header, size):
    """``(start, end)`` inclusive for a single byte range; None to ignore the header."""
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ('', ''):
        return None
    if size == 0:
        raise errors.RangeNotSatisfiable('The image has no data to take a range of',
                                         headers={'Content-Range': 'bytes */0'})
    first, last = match.groups()
    if first == '':
        length = int(last)
        if length == 0:
            raise errors.RangeNotSatisfiable('Empty suffix range',
                                             headers={'Content-Range': 'bytes */%d' % size})
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise errors.RangeNotSatisfiable('Range %s is outside the image\'s %d bytes'
                                         % (header, size),
                                         headers={'Content-Range': 'bytes */%d' % size})
    return start, end


def download(req, image_id):
    """GET /v2/images/{image_id}/file: 200 with the data, 206 for a Range, 204 if none.

    A cached image is served from the cache. An uncached one starts (or joins)
    a fill of the cache and streams what the fill writes, so concurrent
    downloads of one image read the store once; a Range on an uncached image,
    or an image the cache cannot take, streams from the store.
    """
    image = images.get_visible(req, image_id)
    svc = common.services(req)
    svc.policy.authorize(common.request_context(req), 'download_image', svc.target(image))
    if image['status'] != 'active' or not image['location']:
        return common.empty_response()
    size = image['size']
    byte_range = _parse_range(req.headers['Range'], size) if 'Range' in req.headers else None
    start, end = byte_range or (0, size - 1)
    resp = common.empty_response(200)
    resp.content_type = 'application/octet-stream'
    resp.headers['Accept-Ranges'] = 'bytes'
    resp.app_iter = _data(req, svc, image, byte_range)
    resp.content_length = end - start + 1
    if byte_range is None:
        if image['checksum']:
            resp.headers['Content-MD5'] = image['checksum']
    else:
        resp.status = 206
        resp.headers['Content-Range'] = 'bytes %d-%d/%d' % (start, end, size)
    return resp


def _data(req, svc, image, byte_range):
    """The body: from the cache, from a fill of it, or from the store."""
    cache = svc.cache
    # Twice at most: a fill may end between our lookup and our joining it.
    for attempt in range(2 if cache is not None else 0):
        cached = cache.open(image['id'])
        if attempt == 0:
            (metrics.HITS if cached is not None else metrics.MISSES).inc()
        if cached is not None:
            if byte_range is not None:
                cached.seek_range(byte_range[0], byte_range[1] - byte_range[0] + 1)
            file_wrapper = req.environ.get('wsgi.file_wrapper')
            if file_wrapper is not None:
                return file_wrapper(cached, cache.chunk_size)
            return _iter_file(cached, cache.chunk_size)
        if byte_range is not None:
            break
        body = _follow_fill(svc, image)
        if body is not None:
            return body
    if byte_range is None:
        return _verified(svc.store.get(image['location'])[0], image)
    start, end = byte_range
    return svc.store.get(image['location'], offset=start, length=end - start + 1)[0]


def _follow_fill(svc, image):
    """Follow this process's fill of the image, starting one if needed; None if
    the cache will not take the image now."""
    cache = svc.cache
    try:
        job, started = cache.begin_fill(image)
    except (errors.Conflict, cache_module.CacheFull) as exc:
        LOG.info('Serving image %s from the store: %s', image['id'], exc)
        return None
    if started:
        location = image['location']
        threading.Thread(target=job.run,
                         args=(lambda: svc.store.get(location)[0], svc.store.local_descriptor),
                         name='fill-%s' % image['id'], daemon=True).start()
    return job.follow(cache.chunk_size)


def _verified(chunks, image):
    """Stream ``chunks``, holding back the last one until size and MD5 match the
    record; on a mismatch the response ends short, which clients report."""
    md5, size, held = hashlib.md5(), 0, None
    try:
        for chunk in chunks:
            if held is not None:
                yield held
            md5.update(chunk)
            size += len(chunk)
            held = chunk
        if size != image['size'] or (image['checksum'] and
                                     md5.hexdigest() != image['checksum']):
            LOG.error('Store data of image %s does not match its record (%d bytes, MD5 '
                      '%s); download cut short', image['id'], size, md5.hexdigest())
            return
        if held is not None:
            yield held
    finally:
        close = getattr(chunks, 'close', None)
        if close is not None:
            close()


def _iter_file(cached, chunk_size):
    try:
        while True:
            data = cached.read(chunk_size)
            if not data:
                return
            yield data
    finally:
        cached.close()
