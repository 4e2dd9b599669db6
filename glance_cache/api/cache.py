"""The node-local cache API (v2.14+): what this node caches and is caching.

``GET /v2/cache`` keeps exactly the two keys python-glanceclient expects; the
state of each caching job lives beside it under ``/v2/cache/jobs``.
"""

from glance_cache import errors
from glance_cache.api import common
from glance_cache.cache import queue as job_queue

CLEAR_TARGETS = {'': ('cache', 'queue'), 'both': ('cache', 'queue'), 'cache': ('cache',),
                 'queue': ('queue',)}


def _authorize(req, action, target=None):
    svc = common.services(req)
    ctx = common.request_context(req)
    svc.policy.authorize(ctx, action, target if target is not None
                         else {'project_id': ctx.project_id})
    return svc


def list_cache(req):
    """GET /v2/cache: cached entries and queued image ids."""
    svc = _authorize(req, 'cache_list')
    cached = [{'image_id': e.image_id, 'hits': e.hits, 'last_accessed': e.last_accessed,
               'last_modified': e.last_modified, 'size': e.size}
              for e in svc.cache.list()]
    cached_ids = {e['image_id'] for e in cached}
    queued = [image_id for image_id in svc.jobs.pending_ids() if image_id not in cached_ids]
    return common.json_response({'cached_images': cached, 'queued_images': queued})


def queue_image(req, image_id):
    """PUT /v2/cache/{image_id}: 202; the node starts caching the image at once.

    Repeating it for a queued, caching or cached image changes nothing.
    """
    image_id = common.require_image_id(image_id)
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
        svc.jobs.enqueue(image_id, image['size'])
    return common.empty_response(202)


def delete_cached_image(req, image_id):
    """DELETE /v2/cache/{image_id}: 204; out of cache and queue, its fill cancelled."""
    image_id = common.require_image_id(image_id)
    svc = common.services(req)
    try:
        target = svc.target(svc.db.image_get(image_id))
    except errors.NotFound:
        target = None
    _authorize(req, 'cache_delete', target)
    in_queue = svc.jobs.remove(image_id)
    in_cache = svc.cache.delete(image_id)
    if target is None and not (in_queue or in_cache):
        raise errors.ImageNotFound(image_id)
    return common.empty_response()


def clear(req):
    """DELETE /v2/cache: 204; x-image-cache-clear-target: cache, queue or both."""
    svc = _authorize(req, 'cache_delete')
    header = req.headers.get('x-image-cache-clear-target', '').strip().lower()
    if header not in CLEAR_TARGETS:
        raise errors.BadRequest('x-image-cache-clear-target must be cache, queue or empty '
                                '(both), not %r' % header)
    targets = CLEAR_TARGETS[header]
    if 'queue' in targets and 'cache' in targets:
        for image_id in svc.jobs.clear(job_queue.STATES):
            svc.cache.delete(image_id)
        svc.cache.clear()
    elif 'queue' in targets:
        svc.jobs.clear((job_queue.QUEUED,))
    else:
        # Committed entries only: a running fill is queued work and goes on.
        svc.jobs.clear((job_queue.CACHED,))
        svc.cache.clear(cancel_fills=False)
    return common.empty_response()


def clean(req):
    """POST /v2/cache/clean: remove stalled incomplete and invalid files."""
    svc = _authorize(req, 'manage_image_cache')
    files, size = svc.cache.clean()
    return common.json_response({'total_files_cleaned': files, 'total_bytes_cleaned': size})


def prune(req):
    """POST /v2/cache/prune: evict least recently used entries to the low watermark."""
    svc = _authorize(req, 'manage_image_cache')
    files, size = svc.cache.prune()
    return common.json_response({'total_files_pruned': files, 'total_bytes_pruned': size})


def _job_view(svc, record, live):
    view = {key: record[key] for key in (
        'image_id', 'state', 'bytes_done', 'size', 'queued_at', 'started_at', 'finished_at',
        'attempts', 'last_error', 'node')}
    if record['state'] == job_queue.CACHING:
        if svc.cache.get(record['image_id']) is not None:
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
    svc = _authorize(req, 'cache_list')
    live = svc.worker.live_progress() if svc.worker else {}
    jobs = [_job_view(svc, r, live) for r in _current(svc, svc.jobs.all())]
    state = req.GET.get('state')
    if state is not None:
        if state not in job_queue.STATES:
            raise errors.BadRequest('state must be one of %s' % ', '.join(job_queue.STATES))
        jobs = [j for j in jobs if j['state'] == state]
    return common.json_response({'jobs': jobs})


def show_job(req, image_id):
    """GET /v2/cache/jobs/{image_id}: one caching job."""
    image_id = common.require_image_id(image_id)
    svc = _authorize(req, 'cache_list')
    record = svc.jobs.get(image_id)
    if record is None or not _current(svc, [record]):
        raise errors.NotFound('No caching job for image %s on this node' % image_id)
    live = svc.worker.live_progress() if svc.worker else {}
    return common.json_response(_job_view(svc, record, live))


def _current(svc, records):
    """Records minus cached ones whose entry has since been evicted."""
    return [r for r in records
            if r['state'] != job_queue.CACHED or svc.cache.get(r['image_id']) is not None]
