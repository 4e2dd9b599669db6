"""Cache fill speed and memory: fill of a file-store image vs cp + sync and sha512sum.

    .venv/bin/python bench/fill.py [--size-mib 1024] [--warm N] [--fill-cpu-reserve N]

Starts a fresh node, uploads an image of --size-mib random MiB, then measures
in the same run, on the same store file:

- ``cp`` of the file plus ``sync`` (the disk work of a fill, no hashing),
- ``sha512sum`` of the file (one of the two digests a fill computes),
- the first cache fill of the fresh node, started by ``PUT /v2/cache/{id}``
  and timed by the node's own job record (started_at to finished_at), with
  size, MD5 and sha512 verification and the fsyncs on,

and the node's RSS (its processes and their digest processes) before the
fill and at its peak during it. ``--warm N`` adds N more fills of the same
image, each after removing it from the cache. The fill is a background fill:
with the default ``[cache] fill_cpu_reserve`` it keeps one CPU free for
requests; ``--fill-cpu-reserve 0`` lets it use every CPU.
"""

import argparse
import os
import statistics
import time

import _common as common


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size-mib', type=int, default=1024)
    parser.add_argument('--warm', type=int, default=0, metavar='N',
                        help='also time N more fills of the same image')
    parser.add_argument('--fill-cpu-reserve', type=int, metavar='N',
                        help='[cache] fill_cpu_reserve of the node (default: its default)')
    args = parser.parse_args()

    directory = common.workdir('gc-bench-fill-')
    source = common.make_file(os.path.join(directory, 'source.img'), args.size_mib)
    options = {'max_size': str(4 * args.size_mib * common.MIB)}
    if args.fill_cpu_reserve is not None:
        options['fill_cpu_reserve'] = str(args.fill_cpu_reserve)
    node = common.start_node(os.path.join(directory, 'node'), {'cache': options})
    try:
        image = common.upload(node, source)
        stored = os.path.join(node.store_dir, image['id'])
        os.unlink(source)
        copy = os.path.join(directory, 'copy.img')
        common.timed('sync')
        # The disk of a shared machine varies from run to run: take the median
        # of three, each starting with nothing dirty.
        cp_syncs = []
        for _ in range(3):
            cp_syncs.append(common.timed('cp %s %s && sync' % (stored, copy)))
            os.unlink(copy)
            common.timed('sync')
        cp_sync = statistics.median(cp_syncs)
        sha512sum = statistics.median(
            [common.timed('sha512sum %s > /dev/null' % stored) for _ in range(3)])

        pids = common.worker_pids(node)
        fills = []
        with common.RssSampler(pids) as rss:
            for attempt in range(1 + args.warm):
                if attempt:
                    node.request('DELETE', '/v2/cache/%s' % image['id'])
                    common.timed('sync')
                wall = time.perf_counter()
                assert node.request('PUT', '/v2/cache/%s' % image['id']).status_code == 202
                job = common.wait_cached(node, image['id'])
                wall = time.perf_counter() - wall
                fills.append((job['finished_at'] - job['started_at'], wall))
        cached = os.path.join(node.workdir, 'data', 'cache', image['id'])
        assert common.sha512_of(cached) == image['os_hash_value']
    finally:
        node.stop()

    size_gib = args.size_mib / 1024
    print('image: %d MiB (file store), fill with size + MD5 + sha512 checks and fsync; '
          'fill_cpu_reserve = %s of %d CPUs'
          % (args.size_mib, 'default' if args.fill_cpu_reserve is None
             else args.fill_cpu_reserve, len(os.sched_getaffinity(0))))
    print('cp + sync:           %6.2f s (median of %s)'
          % (cp_sync, ', '.join('%.2f' % t for t in cp_syncs)))
    print('sha512sum:           %6.2f s (median of 3)' % sha512sum)
    labels = ['first fill (fresh)'] + ['warm fill %d' % i for i in range(1, len(fills))]
    for label, (fill, wall) in zip(labels, fills, strict=True):
        print('%-20s %6.2f s (PUT to listed cached: %.2f s, %.0f MiB/s)'
              % (label + ':', fill, wall, args.size_mib / fill))
        print('  fill / (cp + sync): %.2f' % (fill / cp_sync))
        print('  fill / sha512sum:   %.2f' % (fill / sha512sum))
    print('node RSS (with its digest processes) before: %.1f MiB, peak: %.1f MiB, '
          'growth: %.1f MiB (%.1f MiB per GiB)'
          % (rss.before / 1024, rss.peak / 1024, (rss.peak - rss.before) / 1024,
             (rss.peak - rss.before) / 1024 / size_gib))


if __name__ == '__main__':
    main()
