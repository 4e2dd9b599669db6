"""The node-local cache API (v2.14+): what this node caches and is caching.

``GET /v2/cache`` keeps exactly the two keys python-glanceclient expects; the
state of each caching job lives beside it under ``/v2/cache/jobs``.

Queueing, deleting, clearing and showing a job act on the receiving node
only, unless the request names target nodes with ``?nodes=all`` or
``?nodes=NAME,...``: then it is passed on to each of them (see forward.py)
and the answer lists each node's outcome.
"""

import functools
import json
import logging
import operator
import threading

from glance_cache import errors, forward
from glance_cache.api import common
from glance_cache.cache import queue as job_queue

LOG = logging.getLogger(__name__)

CLEAR_TARGETS = {'': ('cache', 'queue'), 'both': ('cache', 'queue'), 'cache': ('cache',),
                 'queue': ('queue',)}


def authorize(req, action, target=None):
    svc = common.services(req)
    ctx = common.request_context(req)
    svc.policy.authorize(ctx, action, target if target is not None
                         else {'project_id': ctx.project_id})
    return svc


class CachedListing:
    """The encoded ``cached_images`` of GET /v2/cache, kept up to date by changes.

    Reading and encoding ten thousand entries costs far more than serving
    them, so one process keeps each entry with its JSON between listings:

    - a listing polled while nothing was committed, evicted or read (the
      cache driver's ``version()`` is unchanged, in every process of the
      node) is served from the last text as it is;
    - otherwise only what the driver says changed is read again
      (``changes()``): after a download, the one entry it counted a hit on.
      Where the driver cannot tell (an entry was removed, or the driver keeps
      no count), every entry is read, and only those whose values changed are
      encoded again.
    """

    def __init__(self):
        # Listings are served one at a time, each from the state the last one
        # left; a refresh after one change costs little, so none waits long.
        self._lock = threading.Lock()
        self._version = None  # the driver's version() the text was made at
        self._mark = None     # the driver's changes() mark the entries are as of
        self._entries = {}    # image id -> its CacheEntry
        self._encoded = {}    # image id -> the JSON of its CacheEntry, in listing order
        self._text = None
        self._ids = frozenset()

    def get(self, cache):
        """``(JSON text of the entries, frozenset of their ids)``."""
        with self._lock:
            # Read before the entries: a change after this makes the next
            # version differ, so a listing is never reused past a change.
            version = cache.version()
            if version is None or version != self._version or self._text is None:
                self._refresh(cache)
                self._version = version
            return self._text, self._ids

    def _refresh(self, cache):
        mark, changed, complete = cache.changes(self._mark)
        old_entries, old_encoded = self._entries, self._encoded
        if complete:
            # Built afresh: the entries gone since drop out, the order is the driver's.
            entries, encoded = {}, {}
        else:
            entries, encoded = old_entries, old_encoded   # brought up to date in place
        for entry in changed:
            image_id = entry.image_id
            text = old_encoded[image_id] if old_entries.get(image_id) == entry else None
            entries[image_id] = entry
            encoded[image_id] = text or _encode_entry(entry)
        self._entries, self._encoded = entries, encoded
        self._mark = mark
        # The very text json.dumps gives for the list of the entries' objects.
        self._text = '[%s]' % ', '.join(encoded.values())
        self._ids = frozenset(encoded)


def _encode_entry(entry):
    return json.dumps({'image_id': entry.image_id, 'hits': entry.hits,
                       'last_accessed': entry.last_accessed,
                       'last_modified': entry.last_modified, 'size': entry.size})


def list_cache(req):
    """GET /v2/cache: cached entries and queued image ids."""
    svc = authorize(req, 'cache_list')
    cached, cached_ids = svc.cache_listing.get(svc.cache)
    queued = [image_id for image_id in svc.jobs.pending_ids() if image_id not in cached_ids]
    return common.encoded_json_response('{"cached_images": %s, "queued_images": %s}'
                                        % (cached, json.dumps(queued)))


def on_targets(req, local, success, path=None):
    """Serve a request naming target nodes: ``local`` here, the rest passed on.

    None when the request names no target (serve it here as usual).
    """
    names = forward.requested_targets(req)
    if names is None:
        return None
    # Before the names are looked at: who may not pass requests on learns nothing
    # of the cluster, not even which names exist.
    svc = authorize(req, 'cache_forward')
    outcomes = forward.fan_out(req, forward.resolve_targets(svc, names), local, path)
    return common.json_response({'nodes': outcomes},
                                status=forward.overall_status(outcomes, success))


def queue_image(req, image_id):
    """PUT /v2/cache/{image_id}: 202; the node starts caching the image at once.

    Repeating it for a queued, caching or cached image changes nothing.
    """
    image_id = common.require_image_id(image_id)
    return (on_targets(req, lambda: queue_here(req, image_id), 202)
            or queue_here(req, image_id))


def queue_here(req, image_id):
    """PUT /v2/cache/{image_id} on this node."""
    svc = common.services(req)
    ctx = common.request_context(req)
    image = svc.db.image_get(image_id)
    target = svc.target(image)
    if not svc.policy.check(ctx, 'get_image', target):
        raise errors.ImageNotFound(image_id)
    svc.policy.authorize(ctx, 'cache_image', target)
    if image['status'] != 'active':
        raise errors.InvalidImageState(
            'Only active images can be cached; image %s is %s' % (image_id, image['status']))
    if svc.cache.get(image_id) is None:
        svc.jobs.enqueue(image_id, image['size'], announce=functools.partial(
            job_queue.log_transition, LOG, logging.INFO, image_id, None, job_queue.QUEUED,
            size=image['size'], by=ctx.user_id))
    return common.empty_response(202)


def _pinned_here(svc, image_id=None):
    """Ids of the images pinned to this node (fresh from the database)."""
    return {p['image_id'] for p in svc.db.pins_of_node(svc.node)
            if image_id is None or p['image_id'] == image_id}


def delete_cached_image(req, image_id):
    """DELETE /v2/cache/{image_id}: 204; out of cache and queue, its fill cancelled."""
    image_id = common.require_image_id(image_id)
    return (on_targets(req, lambda: _delete_here(req, image_id), 200)
            or _delete_here(req, image_id))


def _delete_here(req, image_id):
    svc = common.services(req)
    try:
        target = svc.target(svc.db.image_get(image_id))
    except errors.NotFound:
        target = None
    authorize(req, 'cache_delete', target)
    if _pinned_here(svc, image_id):
        raise errors.Conflict('Image %s is pinned to node %s: unpin it first '
                              '(DELETE /v2/cache/pins/%s)' % (image_id, svc.node, image_id))
    record = svc.jobs.get(image_id)
    in_queue = svc.jobs.remove(image_id)
    in_cache = svc.cache.delete(image_id)
    if in_queue:
        job_queue.log_transition(LOG, logging.INFO, image_id, record and record['state'],
                                 job_queue.REMOVED, reason='deleted from the cache',
                                 by=common.request_context(req).user_id)
    if target is None and not (in_queue or in_cache):
        raise errors.ImageNotFound(image_id)
    return common.empty_response()


def clear(req):
    """DELETE /v2/cache: 204; x-image-cache-clear-target: cache, queue or both.

    Images pinned to this node stay, cached or queued.
    """
    return on_targets(req, lambda: _clear_here(req), 200) or _clear_here(req)


def _clear_here(req):
    svc = authorize(req, 'cache_delete')
    header = req.headers.get('x-image-cache-clear-target', '').strip().lower()
    if header not in CLEAR_TARGETS:
        raise errors.BadRequest('x-image-cache-clear-target must be cache, queue or empty '
                                '(both), not %r' % header)
    targets = CLEAR_TARGETS[header]
    pinned = _pinned_here(svc)
    if 'queue' in targets and 'cache' in targets:
        for image_id in svc.jobs.clear(job_queue.STATES, keep=pinned):
            svc.cache.delete(image_id)
        svc.cache.clear(keep=pinned)
    elif 'queue' in targets:
        svc.jobs.clear((job_queue.QUEUED,), keep=pinned)
    else:
        # Committed entries only: a running fill is queued work and goes on.
        svc.jobs.clear((job_queue.CACHED,), keep=pinned)
        svc.cache.clear(cancel_fills=False, keep=pinned)
    return common.empty_response()


def clean(req):
    """POST /v2/cache/clean: remove stalled incomplete and invalid files."""
    svc = authorize(req, 'manage_image_cache')
    files, size = svc.cache.clean()
    return common.json_response({'total_files_cleaned': files, 'total_bytes_cleaned': size})


def prune(req):
    """POST /v2/cache/prune: evict least recently used entries to the low watermark."""
    svc = authorize(req, 'manage_image_cache')
    files, size = svc.cache.prune()
    return common.json_response({'total_files_pruned': files, 'total_bytes_pruned': size})


# What a job shows of its record.
RECORD_FIELDS = ('image_id', 'state', 'bytes_done', 'size', 'queued_at', 'started_at',
                 'finished_at', 'attempts', 'last_error', 'node')
_record_fields = operator.itemgetter(*RECORD_FIELDS)


class EncodedJobs:
    """The JSON of each finished job, kept between two listings of every job.

    A node holding ten thousand images has as many cached jobs, and encoding
    them costs more than reading them. A finished job's view depends on its
    record and whether it is pinned alone, so its text is made again only
    when one of those changed.
    """

    def __init__(self):
        self._texts = {}   # image id -> ((its record's fields, pinned), its JSON)

    def encode(self, records, live, pinned, is_cached, state=None, every_job=False):
        """The JSON list of the views of ``records`` that are current, in ``state`` if given.

        ``every_job``: ``records`` are all the node's records; what is kept
        is then replaced by theirs (the jobs gone since drop out).
        """
        known, texts = self._texts, {}
        listed = []
        for record in records:
            if not _current(record, is_cached):
                continue
            if record['state'] in job_queue.DONE:
                image_id = record['image_id']
                key = (_record_fields(record), image_id in pinned)
                entry = known.get(image_id)
                if entry is None or entry[0] != key:
                    entry = (key, json.dumps(_job_view(record, live, pinned, is_cached)))
                texts[image_id] = entry
                job_state, text = record['state'], entry[1]
            else:
                view = _job_view(record, live, pinned, is_cached)
                job_state, text = view['state'], json.dumps(view)
            if state is None or job_state == state:
                listed.append(text)
        if every_job:
            self._texts = texts
        # The very text json.dumps gives for the list of the views.
        return '[%s]' % ', '.join(listed)


def _job_view(record, live, pinned, is_cached):
    view = {key: record[key] for key in RECORD_FIELDS}
    view['pinned'] = record['image_id'] in pinned
    if record['state'] == job_queue.CACHING:
        if is_cached(record['image_id']):
            # Committed a moment before the worker could write it down: the
            # entry is what GET /v2/cache lists, so say the same here.
            view.update(state=job_queue.CACHED, bytes_done=record['size'])
        elif record['image_id'] in live:
            view['bytes_done'] = live[record['image_id']]
    if record['state'] == job_queue.QUEUED and record['attempts']:
        view['next_attempt_at'] = record['next_attempt_at']
    return view


def list_jobs(req):
    """GET /v2/cache/jobs: every caching job of this node, oldest first."""
    svc = authorize(req, 'cache_list')
    state = req.GET.get('state')
    if state is not None and state not in job_queue.STATES:
        raise errors.BadRequest('state must be one of %s' % ', '.join(job_queue.STATES))
    live = svc.worker.live_progress() if svc.worker else {}
    pinned = svc.member.pinned_ids()
    # Queued and caching jobs are pending records: the finished ones (one per
    # image the node holds, and the failures) need not be read for those.
    every_job = state not in job_queue.PENDING
    records = svc.jobs.all() if every_job else svc.jobs.pending()
    # What is cached, as of after the records were read: an entry committed
    # meanwhile shows its caching record as cached, as a single job would.
    is_cached = svc.cache_listing.get(svc.cache)[1].__contains__
    return common.encoded_json_response('{"jobs": %s}' % svc.encoded_jobs.encode(
        records, live, pinned, is_cached, state, every_job))


def show_job(req, image_id):
    """GET /v2/cache/jobs/{image_id}: one caching job."""
    image_id = common.require_image_id(image_id)
    return (on_targets(req, lambda: _show_job_here(req, image_id), 200)
            or _show_job_here(req, image_id))


def _show_job_here(req, image_id):
    svc = authorize(req, 'cache_list')
    record = svc.jobs.get(image_id)
    is_cached = _in_cache(svc)
    if record is None or not _current(record, is_cached):
        raise errors.NotFound('No caching job for image %s on this node' % image_id)
    live = svc.worker.live_progress() if svc.worker else {}
    return common.json_response(_job_view(record, live, svc.member.pinned_ids(), is_cached))


def _in_cache(svc):
    """Whether an image is in the cache now (one lookup per call)."""
    return lambda image_id: svc.cache.get(image_id) is not None


def _current(record, is_cached):
    """Whether a record still says something: not cached with its entry since gone."""
    return record['state'] != job_queue.CACHED or is_cached(record['image_id'])
