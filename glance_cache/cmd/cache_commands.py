"""The cache commands of glance-cache-manage, spoken over HTTP to one node.

    queue IMAGE... [--wait [--timeout S]] [--nodes N]  ask to cache images
    list                                               cached images and caching jobs
    delete IMAGE... [--nodes N]                        out of the cache and the queue
    clear [--target cache|queue|both] [--nodes N]      empty the cache, the queue or both
    prune                                              evict down to the low watermark
    clean                                              remove stalled and invalid files

The cache API is node-local: ``--url`` should be the node's direct URL, not
a load balancer's, unless ``--nodes`` names the nodes to act on (see
cluster_commands.py, which also holds ``nodes``, ``pin``, ``unpin`` and
``pins``). Results go to stdout, progress and errors to stderr; exit
statuses are runner.py's.
"""

import sys
import time

from glance_cache.cmd import cluster_commands, progress, runner
from glance_cache.cmd.cache_client import CLEAR_TARGETS, CacheClientError

CLEARED = {'both': 'the cache and the queue', 'cache': 'the cache', 'queue': 'the queue'}


def add_parsers(subparsers):
    """Add the cache commands to glance-cache-manage's argparse sub-parsers."""
    queue = subparsers.add_parser('queue', help='Ask the node(s) to cache images now.')
    queue.add_argument('images', metavar='IMAGE', nargs='+', help='Image ID.')
    queue.add_argument('--wait', action='store_true',
                       help='Show progress and wait until every image is cached (on every '
                            'target node); fail if one is not.')
    queue.add_argument('--timeout', type=float, metavar='SECONDS',
                       help='With --wait, give up after this many seconds (default: never).')
    cluster_commands.add_nodes_option(queue, 'Queue')
    queue.set_defaults(func=runner.command(queue_images))
    listing = subparsers.add_parser('list', help='List cached images and caching jobs.')
    listing.set_defaults(func=runner.command(list_cache))
    delete = subparsers.add_parser('delete', help='Remove images from the cache and queue.')
    delete.add_argument('images', metavar='IMAGE', nargs='+', help='Image ID.')
    cluster_commands.add_nodes_option(delete, 'Delete')
    delete.set_defaults(func=runner.command(delete_images))
    clear = subparsers.add_parser('clear', help='Empty the cache, the queue or both.')
    clear.add_argument('--target', choices=CLEAR_TARGETS, default='both',
                       help='What to empty (default: both).')
    cluster_commands.add_nodes_option(clear, 'Clear')
    clear.set_defaults(func=runner.command(clear_cache))
    prune = subparsers.add_parser(
        'prune', help='Evict least recently used images down to the low watermark.')
    prune.set_defaults(func=runner.command(prune_cache))
    clean = subparsers.add_parser('clean', help='Remove stalled incomplete and invalid files.')
    clean.set_defaults(func=runner.command(clean_cache))
    cluster_commands.add_parsers(subparsers)


def queue_images(client, args):
    """``queue``: PUT each image; with ``--wait`` follow each job to its end."""
    if args.timeout is not None and (not args.wait or args.timeout <= 0):
        raise runner.UsageError('--timeout needs --wait and a number of seconds above 0')
    if args.nodes:
        return cluster_commands.queue_on_nodes(client, args)
    status, queued = 0, []
    for image_id in runner.unique(args.images):
        try:
            client.queue(image_id)
        except CacheClientError as exc:
            runner.error('cannot queue image %s: %s' % (image_id, exc.message))
            status = runner.EXIT_FAILED
            continue
        queued.append(image_id)
        print('Queued image %s for caching' % image_id, flush=True)
    if args.wait and queued:
        failures = wait_for_jobs(client, queued, sys.stderr, timeout=args.timeout)
        for image_id in queued:
            if image_id in failures:
                runner.error('image %s was not cached: %s' % (image_id, failures[image_id]))
                status = runner.EXIT_FAILED
            else:
                print('Image %s is cached' % image_id, flush=True)
    return status


def wait_for_jobs(client, image_ids, stream, timeout=None, poll_interval=runner.POLL_INTERVAL,
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
                line.finish('%s: %s' % (image_id, runner.JOB_GONE))
                failures[image_id] = runner.JOB_GONE
                break
            line.update(job)
            if deadline is not None and clock() >= deadline:
                reason = 'still %s after %s s' % (job['state'], '%g' % timeout)
                line.finish('%s: %s' % (image_id, reason))
                failures[image_id] = 'timed out, ' + reason
                break
            sleep(poll_interval)
    return failures


def list_cache(client, args):
    """``list``: the cached images, then every caching job with its state."""
    cached = client.list_cache()['cached_images']
    jobs = client.list_jobs()
    print('Cached images:')
    if cached:
        print(runner.format_table(
            ['Image ID', 'Size', 'Hits', 'Last accessed', 'Last modified'],
            [[e['image_id'], str(e['size']), str(e['hits']), runner.when(e['last_accessed']),
              runner.when(e['last_modified'])] for e in cached]))
    else:
        print('(none)')
    print('Caching jobs:')
    if jobs:
        print(runner.format_table(
            ['Image ID', 'State', 'Progress', 'Attempts', 'Queued at', 'Finished at',
             'Last error'],
            [[j['image_id'], j['state'], runner.job_progress(j), str(j.get('attempts') or 0),
              runner.when(j.get('queued_at')), runner.when(j.get('finished_at')),
              j.get('last_error') or '-'] for j in jobs]))
    else:
        print('(none)')
    return 0


def delete_images(client, args):
    """``delete``: each image out of the cache and the queue (of each target node)."""
    status = 0
    for image_id in runner.unique(args.images):
        try:
            outcomes = client.delete(image_id, nodes=args.nodes)
        except CacheClientError as exc:
            runner.error('cannot delete image %s: %s' % (image_id, exc.message))
            status = runner.EXIT_FAILED
            continue
        if outcomes is None:
            print('Deleted image %s from the cache and the queue' % image_id)
        elif cluster_commands.report_outcomes(outcomes,
                             'deleted image %s from the cache and the queue' % image_id):
            status = runner.EXIT_FAILED
    return status


def clear_cache(client, args):
    """``clear``: empty the cache, the queue or both (of each target node)."""
    outcomes = client.clear(args.target, nodes=args.nodes)
    if outcomes is None:
        print('Cleared %s' % CLEARED[args.target])
        return 0
    failed = cluster_commands.report_outcomes(outcomes, 'cleared %s' % CLEARED[args.target])
    return runner.EXIT_FAILED if failed else 0


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
