"""How long one CPU stops running a process while another CPU works; no node.

    .venv/bin/python bench/pauses.py [--seconds 5] [--threshold-ms 1] [--size-mib 1024]

This process, bound to the first CPU, does nothing but read the clock for
--seconds: every gap longer than --threshold-ms between two readings is a
pause, time in which that CPU did not run it (an interrupt, another task, or
the hypervisor running something else). It measures that while a process
bound to the last CPU, over and over:

- does nothing (the reference: the pauses there are anyway),
- spins in a Python loop (CPU work only),
- reads a --size-mib file with O_DIRECT (``dd``: the disk, no page cache),
- writes a --size-mib file with O_DIRECT (``dd``: the disk, no page cache),
- writes --size-mib of memory it has just allocated (new pages),
- copies the --size-mib file and syncs the copy (``cp`` and ``sync``: what a
  cache fill does to the disk and the page cache, without the hashing).

For each, it prints the paused share of the time (ms per 100 ms), the
longest pause and their number, against the reference. The node's request
threads keep to the first CPU while a long fill runs on the last, so what
that CPU loses here to the other's work, a request loses too; this is how
the listing's tail during a fill (``bench/cache_api.py``, busy part) can be
told apart from anything the node does. The share of the CPUs' time the
hypervisor took meanwhile (steal) is printed at the end.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

import _common as common


def pauses(seconds, threshold):
    """The gaps longer than ``threshold`` between back-to-back clock readings
    over ``seconds``, in seconds.

    >>> pauses(0.05, 10.0)
    []
    """
    clock = time.perf_counter
    last = clock()
    end = last + seconds
    gaps = []
    while last < end:
        now = clock()
        if now - last > threshold:
            gaps.append(now - last)
        last = now
    return gaps


def summary(gaps, seconds):
    """``(ms paused per 100 ms, longest pause in ms, number of pauses)``.

    >>> summary([0.002, 0.010], 1.0)
    (1.2, 10.0, 2)
    >>> summary([], 2.0)
    (0.0, 0.0, 0)
    """
    return (round(sum(gaps) / seconds * 100.0, 3), round(max(gaps, default=0.0) * 1000.0, 3),
            len(gaps))


def loads(python, source, scratch, size_mib):
    """``(label, shell command or None)`` for each case, run over and over."""
    new_memory = ('m = bytearray(%d << 20); m[::4096] = bytes(len(m) // 4096)' % size_mib)
    return [
        ('nothing (the reference)', None),
        ('a Python loop spins', '"%s" -c "while True: pass"' % python),
        ('dd reads the file, O_DIRECT',
         'dd if="%s" of=/dev/null bs=8M iflag=direct status=none' % source),
        ('dd writes %d MiB, O_DIRECT' % size_mib,
         'dd if=/dev/zero of="%s" bs=8M count=%d oflag=direct status=none'
         % (scratch, size_mib // 8)),
        ('%d MiB of new memory written' % size_mib, '"%s" -c "%s"' % (python, new_memory)),
        ('cp copies the file, then sync', 'cp "%s" "%s" && sync "%s"'
         % (source, scratch, scratch)),
    ]


def measure(command, seconds, threshold, busy_cpu):
    """Pauses of this process while ``command`` runs over and over on ``busy_cpu``."""
    proc = None
    if command is not None:
        proc = subprocess.Popen(['sh', '-c', 'while :; do %s; done' % command],
                                start_new_session=True,
                                preexec_fn=lambda: os.sched_setaffinity(0, {busy_cpu}))
    try:
        return pauses(seconds, threshold)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=5.0,
                        help='how long each case is measured')
    parser.add_argument('--threshold-ms', type=float, default=1.0,
                        help='the shortest gap counted as a pause')
    parser.add_argument('--size-mib', type=int, default=1024,
                        help='the file read, written and copied, and the memory taken')
    args = parser.parse_args()
    if args.seconds <= 0 or args.threshold_ms <= 0 or args.size_mib < 8:
        parser.error('--seconds and --threshold-ms must be above 0, --size-mib 8 or more')
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        parser.error('needs two CPUs: one reads the clock, the other works')
    reader_cpu, busy_cpu = cpus[0], cpus[-1]

    directory = common.workdir('gc-bench-pauses-')
    source = common.make_file(os.path.join(directory, 'source.img'), args.size_mib)
    scratch = os.path.join(directory, 'scratch.img')
    os.sched_setaffinity(0, {reader_cpu})
    threshold = args.threshold_ms / 1000.0
    print('[pauses] CPU %d reads the clock for %.0f s per case, gaps over %.1f ms counted; '
          'CPU %d works' % (reader_cpu, args.seconds, args.threshold_ms, busy_cpu))
    reference = None
    with common.StolenTime() as stolen:
        for label, command in loads(sys.executable, source, scratch, args.size_mib):
            paused, longest, count = summary(
                measure(command, args.seconds, threshold, busy_cpu), args.seconds)
            if reference is None:
                reference = paused
                against = ''
            elif reference:
                against = '; %.1f x the reference' % (paused / reference)
            else:
                against = '; none in the reference'
            print('  while %-38s paused %5.2f ms per 100 ms, longest %6.1f ms, %5d '
                  'pauses%s' % (label + ':', paused, longest, count, against))
            if os.path.exists(scratch):
                os.unlink(scratch)
    print('  [pauses] %s' % stolen)


if __name__ == '__main__':
    main()
