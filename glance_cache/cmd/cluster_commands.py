"""The cluster commands of glance-cache-manage, and ``--nodes`` on the cache commands.

    nodes [--forget NAME]      the nodes of the cluster; forget one that is down
    pin IMAGE [--nodes N]      keep an image cached on nodes, never evicted
    unpin IMAGE [--nodes N]    drop an image's pins
    pins                       every pinned image

With ``--nodes all`` or ``--nodes NAME,...``, ``queue``, ``delete`` and
``clear`` ask the node at ``--url`` to pass the request on to those nodes of
its cluster, and print a line per node; ``queue --wait`` then follows the job
on every one of them. ``nodes``, ``pin``, ``unpin`` and ``pins`` work on the
cluster's shared registry through the same node. A node's ``FAILED`` line
goes to stderr.
"""

import argparse
import sys
import time

from glance_cache.cmd import progress, runner
from glance_cache.cmd.cache_client import CacheClientError

ALL_NODES = 'all'


def add_parsers(subparsers):
    """Add the cluster commands (nodes, pin, unpin, pins) to the sub-parsers."""
    nodes = subparsers.add_parser(
        'nodes', help='Show the nodes of the cluster: state, holdings, queue and pins.')
    nodes.add_argument('--forget', metavar='NAME',
                       help='Instead, remove node NAME, which must be down, from the '
                            'registry (a node taken out of service for good).')
    nodes.set_defaults(func=runner.command(show_nodes))
    pin = subparsers.add_parser(
        'pin', help='Pin an image: keep it cached, never evicted, and cache it now.')
    pin.add_argument('image', metavar='IMAGE', help='Image ID.')
    pin.add_argument('--nodes', type=node_names, metavar='all|NAME,...',
                     help='The nodes to pin it to (default: all, including nodes that '
                          'join later).')
    pin.set_defaults(func=runner.command(pin_image))
    unpin = subparsers.add_parser(
        'unpin', help='Unpin an image; its cached copies stay, as ordinary entries.')
    unpin.add_argument('image', metavar='IMAGE', help='Image ID.')
    unpin.add_argument('--nodes', type=node_names, metavar='all|NAME,...',
                       help='Remove only the pin to all nodes ("all") or the pins to these '
                            'nodes (default: every pin of the image).')
    unpin.set_defaults(func=runner.command(unpin_image))
    pins = subparsers.add_parser('pins', help='List the pinned images.')
    pins.set_defaults(func=runner.command(list_pins))


def add_nodes_option(parser, verb):
    parser.add_argument('--nodes', type=node_names, metavar='all|NAME,...',
                        help='%s on these nodes of the cluster, passed on by the node at '
                             '--url, with a line per node (default: that node only).' % verb)


def node_names(value):
    """``--nodes``: ``all`` or comma-separated node names, as the ``nodes`` parameter."""
    names = runner.unique(n.strip() for n in value.split(',') if n.strip())
    if not names:
        raise argparse.ArgumentTypeError(
            'expected "all" or a comma-separated list of node names, not %r' % value)
    if ALL_NODES in names and len(names) > 1:
        raise argparse.ArgumentTypeError('"all" cannot be combined with node names')
    return ','.join(names)


def outcome_reason(outcome):
    """Why a target node's outcome is not ok, in one line."""
    message = outcome.get('message') or 'no details'
    if outcome.get('state') == 'down':
        return 'down: %s' % message
    if outcome.get('status'):
        return 'HTTP %d: %s' % (outcome['status'], message)
    return message


def report_outcomes(outcomes, done):
    """A line per target node: ``NAME: done`` on stdout, ``NAME: FAILED (why)`` on stderr.

    Returns ``{name: reason}`` for the nodes that did not succeed.
    """
    failed = {}
    for outcome in outcomes:
        if outcome.get('ok'):
            print('%s: %s' % (outcome['node'], done), flush=True)
        else:
            failed[outcome['node']] = reason = outcome_reason(outcome)
            sys.stderr.write('%s: FAILED (%s)\n' % (outcome['node'], reason))
            sys.stderr.flush()
    return failed


def queue_on_nodes(client, args):
    """``queue --nodes``: PUT each image to the target nodes; ``--wait`` follows every node.

    Nodes that are down or refuse at queue time are reported failed at once
    and not followed.
    """
    status, targets, refused = 0, {}, {}
    for image_id in runner.unique(args.images):
        try:
            outcomes = client.queue(image_id, nodes=args.nodes)
        except CacheClientError as exc:
            runner.error('cannot queue image %s: %s' % (image_id, exc.message))
            status = runner.EXIT_FAILED
            continue
        refused[image_id] = report_outcomes(outcomes, 'queued image %s for caching' % image_id)
        targets[image_id] = [o['node'] for o in outcomes]
        if refused[image_id]:
            status = runner.EXIT_FAILED
    if not args.wait:
        return status
    followed = {image_id: [n for n in names if n not in refused[image_id]]
                for image_id, names in targets.items()}
    failures = wait_for_node_jobs(client, followed, args.nodes, sys.stderr,
                                  timeout=args.timeout)
    for image_id, names in targets.items():
        for name in names:
            reason = refused[image_id].get(name) or failures[image_id].get(name)
            if reason:
                runner.error('image %s was not cached on %s: %s' % (image_id, name, reason))
                status = runner.EXIT_FAILED
            else:
                print('%s: image %s is cached' % (name, image_id), flush=True)
    return status


def wait_for_node_jobs(client, images, nodes, stream, timeout=None,
                       poll_interval=runner.POLL_INTERVAL, clock=time.monotonic, sleep=time.sleep):
    """Follow each image's job on its nodes until cached or failed, a line per node.

    ``images`` maps each image id to the names of the nodes to follow, and
    ``nodes`` is the ``--nodes`` value the jobs are polled with. Images are
    followed one after the other, the nodes of one image all at once.
    Returns ``{image_id: {node: reason}}`` for the nodes on which the image
    did not end up cached. ``timeout`` bounds the whole wait.
    """
    deadline = None if timeout is None else clock() + timeout
    failures = {}
    for image_id, names in images.items():
        block = progress.ProgressBlock(stream, 'Image %s on %s:' % (image_id, ', '.join(names)),
                                       names, clock=clock)
        failed = failures[image_id] = {}
        pending, last_state, missing = list(names), {}, set()
        while pending:
            try:
                seen = node_jobs(client, image_id, nodes, pending, missing)
            except CacheClientError as exc:
                seen = dict.fromkeys(pending, exc.message)
            for name in list(pending):
                job = seen[name]
                if job is None:
                    continue
                if isinstance(job, str):
                    block.finish(name, '%s: %s' % (name, job))
                    failed[name] = job
                elif job['state'] in ('cached', 'failed'):
                    block.finish(name, progress.describe(job, label=name))
                    if job['state'] == 'failed':
                        failed[name] = job.get('last_error') or 'the caching job failed'
                else:
                    block.update(name, job)
                    last_state[name] = job['state']
                    continue
                pending.remove(name)
            if pending and deadline is not None and clock() >= deadline:
                for name in pending:
                    reason = 'still %s after %s s' % (last_state.get(name, 'unseen'),
                                                      '%g' % timeout)
                    block.finish(name, '%s: %s' % (name, reason))
                    failed[name] = 'timed out, ' + reason
                pending = []
            block.draw()
            if pending:
                sleep(poll_interval)
    return failures


def node_jobs(client, image_id, nodes, names, missing):
    """Each of ``names``' job record of the image, polled through the node at --url.

    A value is the record; a ``str``, why the node cannot be followed further;
    or None, nothing new yet. ``missing`` holds the nodes that had no record
    and did not hold the image at the last poll; it is updated.
    """
    outcomes = {o['node']: o for o in client.job_on_nodes(image_id, nodes)}
    holders, seen = None, {}
    for name in names:
        outcome = outcomes.get(name)
        if outcome is None:
            seen[name] = 'no longer a node of the cluster (forgotten meanwhile?)'
        elif outcome.get('ok') and isinstance(outcome.get('body'), dict):
            seen[name] = outcome['body']
            missing.discard(name)
        elif outcome.get('status') == 404:
            # No record: cached without one (a download filled it) or removed.
            if holders is None:
                holders = set(client.holders(image_id))
            if outcome['url'] in holders:
                seen[name] = {'image_id': image_id, 'state': 'cached'}
            elif name in missing:
                seen[name] = runner.JOB_GONE
            else:
                # A node records its holding just after the commit: look once more.
                missing.add(name)
                seen[name] = None
        else:
            seen[name] = outcome_reason(outcome)
    return seen


def _ago(seconds):
    if seconds is None:
        return '-'
    if seconds < 60:
        return '%.1f s ago' % seconds
    return '%s ago' % progress.format_duration(seconds)


def _amount(count, size, budget):
    text = '%d, %s' % (count or 0, progress.format_bytes(size or 0))
    return text + (' of %s' % progress.format_bytes(budget) if budget else '')


def _running(jobs):
    if not jobs:
        return '0'
    return '%d (%s)' % (len(jobs), ', '.join(runner.job_progress(j) for j in jobs))


def node_row(node):
    """The cells of one node of ``GET /v2/cache/cluster`` in the ``nodes`` table."""
    return [node['name'], node['url'], node['state'], _ago(node.get('heartbeat_age')),
            _amount(node.get('cached_images'), node.get('cached_bytes'), node.get('max_size')),
            str(node.get('queued_jobs') or 0), str(node.get('failed_jobs') or 0),
            _running(node.get('running_jobs')),
            _amount(node.get('pinned_images'), node.get('pinned_bytes'),
                    node.get('pinned_max_size'))]


def show_nodes(client, args):
    """``nodes``: every node of the cluster; ``--forget NAME`` removes one that is down."""
    if args.forget:
        client.forget_node(args.forget)
        print('Forgot node %s' % args.forget)
        return 0
    nodes = client.cluster()
    if not nodes:
        print('(none: the node at --url is not part of a cluster yet)')
        return 0
    print(runner.format_table(['Name', 'URL', 'State', 'Last heartbeat', 'Cached', 'Queued',
                        'Failed', 'Running', 'Pinned'], [node_row(n) for n in nodes]))
    return 0


def _pinned_to(names):
    return 'all nodes' if names == [ALL_NODES] else 'node(s) %s' % ', '.join(names)


def pin_image(client, args):
    """``pin``: pin the image and show whether each target was asked to cache it now.

    A target that could not be asked (down, say) caches it at its next
    heartbeat; the pin is stored either way, so that is no failure.
    """
    created, pin = client.pin(args.image, nodes=args.nodes)
    what = 'image %s (%s)' % (pin['image_id'], progress.format_bytes(pin.get('size') or 0))
    if created:
        print('Pinned %s to %s' % (what, _pinned_to(pin['nodes'])), flush=True)
    else:
        print('Already pinned: %s to %s' % (what, _pinned_to(pin['nodes'])), flush=True)
    for outcome in pin.get('caching') or []:
        if outcome.get('ok'):
            print('%s: queued image %s for caching' % (outcome['node'], pin['image_id']))
        else:
            print('%s: not asked now (%s); it caches the image at its next heartbeat'
                  % (outcome['node'], outcome_reason(outcome)))
    return 0


def unpin_image(client, args):
    """``unpin``: remove every pin of the image, or those to ``--nodes``."""
    client.unpin(args.image, nodes=args.nodes)
    if args.nodes:
        print('Unpinned image %s from %s' % (args.image, _pinned_to(args.nodes.split(','))))
    else:
        print('Unpinned image %s' % args.image)
    return 0


def list_pins(client, args):
    """``pins``: every pinned image with the nodes it is pinned to."""
    pins = client.list_pins()
    if not pins:
        print('(none)')
        return 0
    print(runner.format_table(['Image ID', 'Size', 'Nodes', 'Created at', 'Created by'],
                       [[p['image_id'], str(p['size']), ', '.join(p['nodes']),
                         runner.when(p.get('created_at')), p.get('created_by') or '-']
                        for p in pins]))
    return 0
