"""Caching one image on three nodes with one call, against caching it on one node.

    .venv/bin/python bench/cluster.py [--size-mib 512] [--rounds 3]

Starts three nodes on one throwaway PostgreSQL database (127.0.0.1:5432) and
one file store, uploads an image of --size-mib random MiB, then, in each
round and from empty caches:

- one node: ``PUT /v2/cache/{id}`` on node1, until node1's job is cached;
- three nodes: ``PUT /v2/cache/{id}?nodes=all`` on node1, until the job is
  cached on every node (polled through node1 with ``?nodes=all``);
- three nodes directly (the reference for the fan-out itself): one plain
  ``PUT /v2/cache/{id}`` to each node's own URL from three client threads at
  once, until each node's job is cached.

All are timed from the first PUT to the moment the client sees the last job
cached. Prints the medians and the ratios three/one (target <= 1.3) and
fan-out/direct (what passing the request on costs). Every fill verifies
size, MD5 and sha512 and fsyncs, on every node, so three fills need three
times the CPU of one: on a machine with fewer free cores than three fills
use, three/one is bound by the cores, which the direct run shows.
"""

import argparse
import concurrent.futures
import os
import statistics
import time

import _common as common

helpers = common.helpers

NODES = ('node1', 'node2', 'node3')


def clear_all(node):
    resp = node.request('DELETE', '/v2/cache?nodes=all')
    assert resp.status_code == 200, resp.text
    common.timed('sync')


def cached_everywhere(node, image_id):
    resp = node.request('GET', '/v2/cache/jobs/%s?nodes=all' % image_id)
    outcomes = resp.json()['nodes']
    for outcome in outcomes:
        state = (outcome.get('body') or {}).get('state')
        if state == 'failed':
            raise RuntimeError('caching failed on %s: %s'
                               % (outcome['node'], outcome['body']['last_error']))
        if state != 'cached':
            return False
    return len(outcomes) == len(NODES)


def cache_directly(node, image_id):
    assert node.request('PUT', '/v2/cache/%s' % image_id).status_code == 202
    common.wait_cached(node, image_id)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size-mib', type=int, default=512)
    parser.add_argument('--rounds', type=int, default=3)
    args = parser.parse_args()

    directory = common.workdir('gc-bench-cluster-')
    database = helpers.ThrowawayDatabase('postgresql')
    db_url = database.create(directory)
    store = os.path.join(directory, 'images')
    nodes = []
    try:
        for name in NODES:
            node = helpers.Node(os.path.join(directory, name), db_url, {
                'DEFAULT': {'node_name': name},
                'glance_store': {'filesystem_store_datadir': store},
                'cache': {'max_size': str(4 * args.size_mib * common.MIB)},
                'cluster': {'heartbeat_interval': '1'}})
            nodes.append(node.start())
        first = nodes[0]
        helpers.wait_for(lambda: len(first.request('GET', '/v2/cache/cluster')
                                     .json()['nodes']) == len(NODES),
                         'every node to register', timeout=60)
        source = common.make_file(os.path.join(directory, 'source.img'), args.size_mib)
        image = common.upload(first, source)
        os.unlink(source)

        one, three, direct = [], [], []
        for _ in range(args.rounds):
            clear_all(first)
            start = time.perf_counter()
            assert first.request('PUT', '/v2/cache/%s' % image['id']).status_code == 202
            common.wait_cached(first, image['id'])
            one.append(time.perf_counter() - start)

            clear_all(first)
            start = time.perf_counter()
            resp = first.request('PUT', '/v2/cache/%s?nodes=all' % image['id'])
            assert resp.status_code == 202, resp.text
            helpers.wait_for(lambda: cached_everywhere(first, image['id']),
                             'the image cached on every node', timeout=3600, interval=0.01)
            three.append(time.perf_counter() - start)

            clear_all(first)
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
                list(pool.map(lambda n: cache_directly(n, image['id']), nodes))
            direct.append(time.perf_counter() - start)

        cpus = os.cpu_count()
        print('image: %d MiB; %d rounds; %d CPU(s)' % (args.size_mib, args.rounds, cpus))
        print('one node:    median %.2f s  (runs: %s)'
              % (statistics.median(one), ', '.join('%.2f' % t for t in one)))
        print('three nodes: median %.2f s  (runs: %s)'
              % (statistics.median(three), ', '.join('%.2f' % t for t in three)))
        print('three nodes directly, at once: median %.2f s  (runs: %s)'
              % (statistics.median(direct), ', '.join('%.2f' % t for t in direct)))
        print('three / one: %.2f  (target <= 1.3)'
              % (statistics.median(three) / statistics.median(one)))
        print('fan-out / direct: %.2f' % (statistics.median(three) / statistics.median(direct)))
    finally:
        for node in nodes:
            node.stop()
        database.drop()


if __name__ == '__main__':
    main()
