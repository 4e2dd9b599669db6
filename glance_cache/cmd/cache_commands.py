"""The cache commands of glance-cache-manage, spoken over HTTP to one node.

    queue IMAGE [IMAGE ...] [--wait [--timeout S]]   ask the node to cache images
    list                                             cached images and caching jobs
    delete IMAGE [IMAGE ...]                         out of the cache and the queue
    clear [--target cache|queue|both]                empty the cache, the queue or both
    prune                                            evict down to the low watermark
    clean                                            remove stalled and invalid files

Results go to stdout, progress and errors to stderr. The exit status is 0 on
success, 1 when the node refused or failed a request or an image was not
cached, 2 for a usage error (such as no node URL) and 130 when interrupted.
The cache API is node-local: ``--url`` should be the node's direct URL, not
a load balancer's.
"""

import functools
import os
import sys
import time

from glance_cache.cmd import progress
from glance_cache.cmd.cache_client import CLEAR_TARGETS, CacheClient, CacheClientError

PROG = 'glance-cache-manage'
URL_ENV = ('GLANCE_CACHE_URL', 'OS_IMAGE_URL')
TOKEN_ENV = 'OS_AUTH_TOKEN'
POLL_INTERVAL = 0.2
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class UsageError(Exception):
    """The command line cannot work as given."""


def add_parsers(subparsers):
    """Add the cache commands to glance-cache-manage's argparse sub-parsers."""
    queue = subparsers.add_parser('queue', help='Ask the node to cache images now.')
    queue.add_argument('images', metavar='IMAGE', nargs='+', help='Image ID.')
    queue.add_argument('--wait', action='store_true',
                       help='Show progress and wait until every image is cached; '
                            'fail if one is not.')
    queue.add_argument('--timeout', type=float, metavar='SECONDS',
                       help='With --wait, give up after this many seconds (default: never).')
    queue.set_defaults(func=_command(queue_images))
    listing = subparsers.add_parser('list', help='List cached images and caching jobs.')
    listing.set_defaults(func=_command(list_cache))
    delete = subparsers.add_parser('delete', help='Remove images from the cache and queue.')
    delete.add_argument('images', metavar='IMAGE', nargs='+', help='Image ID.')
    delete.set_defaults(func=_command(delete_images))
    clear = subparsers.add_parser('clear', help='Empty the cache, the queue or both.')
    clear.add_argument('--target', choices=CLEAR_TARGETS, default='both',
                       help='What to empty (default: both).')
    clear.set_defaults(func=_command(clear_cache))
    prune = subparsers.add_parser(
        'prune', help='Evict least recently used images down to the low watermark.')
    prune.set_defaults(func=_command(prune_cache))
    clean = subparsers.add_parser('clean', help='Remove stalled incomplete and invalid files.')
    clean.set_defaults(func=_command(clean_cache))


def _command(handler):
    # Handlers take (client, args); the runner builds the client from the
    # configuration and turns errors into messages and exit statuses.
    return functools.partial(run, handler)


def make_client(conf, environ=None):
    """A CacheClient for ``--url`` and ``--os-auth-token``, falling back to the environment."""
    environ = os.environ if environ is None else environ
    url = conf.url or next((environ[n] for n in URL_ENV if environ.get(n)), None)
    if not url:
        raise UsageError('no node URL: pass --url or set %s' % ' or '.join(URL_ENV))
    token = conf.os_auth_token or environ.get(TOKEN_ENV)
    try:
        return CacheClient(url, token)
    except CacheClientError as exc:
        raise UsageError(exc.message) from None


def run(func, conf):
    """Run a cache command; its exit status, with errors reported on stderr."""
    try:
        return func(make_client(conf), conf.command)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except CacheClientError as exc:
        _error(exc.message)
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write('\n')
        _error('interrupted; the node goes on with what it was asked to do')
        return EXIT_INTERRUPTED


def _error(message):
    sys.stderr.write('%s: %s\n' % (PROG, message))
    sys.stderr.flush()


def _unique(items):
    return list(dict.fromkeys(items))


def queue_images(client, args):
    """``queue``: PUT each image; with ``--wait`` follow each job to its end."""
    if args.timeout is not None and (not args.wait or args.timeout <= 0):
        raise UsageError('--timeout needs --wait and a number of seconds above 0')
    status, queued = 0, []
    for image_id in _unique(args.images):
        try:
            client.queue(image_id)
        except CacheClientError as exc:
            _error('cannot queue image %s: %s' % (image_id, exc.message))
            status = EXIT_FAILED
            continue
        queued.append(image_id)
        print('Queued image %s for caching' % image_id, flush=True)
    if args.wait and queued:
        failures = wait_for_jobs(client, queued, sys.stderr, timeout=args.timeout)
        for image_id in queued:
            if image_id in failures:
                _error('image %s was not cached: %s' % (image_id, failures[image_id]))
                status = EXIT_FAILED
            else:
                print('Image %s is cached' % image_id, flush=True)
    return status


def wait_for_jobs(client, image_ids, stream, timeout=None, poll_interval=POLL_INTERVAL,
                  clock=time.monotonic, sleep=time.sleep):
    """Follow each image's job until cached or failed, showing progress on ``stream``.

    Images are followed one after the other; the node works on all of them
    meanwhile. Returns ``{image_id: reason}`` for the images that did not end
    up cached. ``timeout`` bounds the whole wait.
    """
    deadline = None if timeout is None else clock() + timeout
    failures = {}
    for image_id in image_ids:
        line = progress.ProgressLine(stream, clock=clock)
        while True:
            try:
                job = client.job(image_id)
                if job is None:
                    # No record: cached without one (a download filled it) or removed.
                    cached = {e['image_id'] for e in client.list_cache()['cached_images']}
                    job = {'image_id': image_id, 'state': 'cached' if image_id in cached
                           else 'gone'}
            except CacheClientError as exc:
                line.finish('%s: %s' % (image_id, exc.message))
                failures[image_id] = exc.message
                break
            if job['state'] in ('cached', 'failed'):
                line.finish(progress.describe(job))
                if job['state'] == 'failed':
                    failures[image_id] = job.get('last_error') or 'the caching job failed'
                break
            if job['state'] == 'gone':
                reason = 'its caching job is gone (deleted or cleared meanwhile?)'
                line.finish('%s: %s' % (image_id, reason))
                failures[image_id] = reason
                break
            line.update(job)
            if deadline is not None and clock() >= deadline:
                reason = 'still %s after %s s' % (job['state'], '%g' % timeout)
                line.finish('%s: %s' % (image_id, reason))
                failures[image_id] = 'timed out, ' + reason
                break
            sleep(poll_interval)
    return failures


def format_table(headers, rows):
    """A boxed text table of ``rows`` (sequences of strings) under ``headers``."""
    rows = [[' '.join(str(cell).split()) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def line(cells):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + ' |'

    return '\n'.join([rule, line(headers), rule] + [line(r) for r in rows] + [rule])


def _when(epoch):
    if not epoch:
        return '-'
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))


def _job_progress(job):
    done, size = job.get('bytes_done') or 0, job.get('size')
    if not size:
        return progress.format_bytes(done)
    return '%d%% of %s' % (min(100 * done // size, 100), progress.format_bytes(size))


def list_cache(client, args):
    """``list``: the cached images, then every caching job with its state."""
    cached = client.list_cache()['cached_images']
    jobs = client.list_jobs()
    print('Cached images:')
    if cached:
        print(format_table(
            ['Image ID', 'Size', 'Hits', 'Last accessed', 'Last modified'],
            [[e['image_id'], str(e['size']), str(e['hits']), _when(e['last_accessed']),
              _when(e['last_modified'])] for e in cached]))
    else:
        print('(none)')
    print('Caching jobs:')
    if jobs:
        print(format_table(
            ['Image ID', 'State', 'Progress', 'Attempts', 'Queued at', 'Finished at',
             'Last error'],
            [[j['image_id'], j['state'], _job_progress(j), str(j.get('attempts') or 0),
              _when(j.get('queued_at')), _when(j.get('finished_at')),
              j.get('last_error') or '-'] for j in jobs]))
    else:
        print('(none)')
    return 0


def delete_images(client, args):
    """``delete``: each image out of the cache and the queue."""
    status = 0
    for image_id in _unique(args.images):
        try:
            client.delete(image_id)
        except CacheClientError as exc:
            _error('cannot delete image %s: %s' % (image_id, exc.message))
            status = EXIT_FAILED
            continue
        print('Deleted image %s from the cache and the queue' % image_id)
    return status


def clear_cache(client, args):
    """``clear``: empty the cache, the queue or both."""
    client.clear(args.target)
    print({'both': 'Cleared the cache and the queue', 'cache': 'Cleared the cache',
           'queue': 'Cleared the queue'}[args.target])
    return 0


def prune_cache(client, args):
    """``prune``: evict down to the low watermark and say how much went."""
    files, size = client.prune()
    print('Pruned %d file(s), %d byte(s)' % (files, size))
    return 0


def clean_cache(client, args):
    """``clean``: remove stalled incomplete and invalid files and say how much went."""
    files, size = client.clean()
    print('Cleaned %d file(s), %d byte(s)' % (files, size))
    return 0
