"""FillCpus: background fills run off the CPUs kept for serving requests.

A fill is CPU work: MD5 and the multihash each take a core at full speed.
On a node with few CPUs a background fill (one started by ``PUT
/v2/cache``) then competes with the threads answering requests, and
lowering its priority does not help: a woken request thread still waits
behind it on whichever CPU it lands. So the fill's threads keep off
``[cache] fill_cpu_reserve`` CPUs. And while long fills (images of
``MOVE_REQUESTS_FROM`` bytes or more) run that can keep every fill CPU busy
(``CPUS_PER_FILL`` each: on two CPUs, one fill), the process's other
threads, those serving requests among them, keep to the reserved CPUs: the
kernel would otherwise now and then wake one of them on a CPU the fills
keep busy, and the request would wait there. Shorter fills end before that
matters, and moving every thread of the process costs a system call each;
fills that leave fill CPUs idle leave the request threads room there.

The limit is per fill (``Confinement``). It binds only the threads the fill
itself runs, and a client downloading the image while it fills lifts it for
that fill: its data is then awaited, not background work. With
``workers`` above 1, glance-cache-api names the process that starts the
node's server processes (gunicorn's arbiter) in ``SERVER_PID_ENV``, and the
threads of its other children move too.

Thread affinity exists on Linux only, and under eventlet every green thread
is the process's one real thread, so there fills are not confined.

    >>> FillCpus(reserve=0).confinement(size=1 << 30) is UNCONFINED
    True
"""

import logging
import math
import os
import sys
import threading

LOG = logging.getLogger(__name__)

# Background fills of this many bytes or more (or of unknown size) are long:
# they may keep the process's other threads off the fill CPUs while they run.
MOVE_REQUESTS_FROM = 32 * 1024 * 1024
# The CPUs one long fill can keep busy: its own thread and its two digest
# processes. Other threads move off the fill CPUs only while the long fills
# running can keep all of them busy.
CPUS_PER_FILL = 3
# Where a process lists its threads.
TASKS = '/proc/self/task'
# Set by glance-cache-api when it runs several server processes: the process
# that starts them, whose children are the node's server processes.
SERVER_PID_ENV = 'GLANCE_CACHE_SERVER_PID'


def green_threads():
    """Whether ``threading`` has been monkey-patched by eventlet."""
    patcher = sys.modules.get('eventlet.patcher')
    return patcher is not None and patcher.is_monkey_patched('thread')


class FillCpus:
    """The CPUs this process may use, and the part of them background fills get."""

    def __init__(self, reserve):
        self.usable = None
        self.for_fills = None
        if not hasattr(os, 'sched_setaffinity') or green_threads():
            return
        self.usable = frozenset(os.sched_getaffinity(0))
        # Fills take the highest-numbered CPUs; at least one is theirs.
        kept = min(reserve, len(self.usable) - 1)
        if kept > 0:
            self.for_fills = frozenset(sorted(self.usable)[kept:])
            self._placement = _Placement(self.for_fills, self.usable)

    def describe(self):
        """A phrase for the log: where background fills run."""
        if self.for_fills is None:
            return 'on every CPU'
        fills_to_move = math.ceil(len(self.for_fills) / CPUS_PER_FILL)
        for_requests = _cpu_list(self.usable - self.for_fills)
        return ('on CPU(s) %s, leaving %s to requests; while %d fill(s) of %d MiB or more '
                'run, the other threads keep to %s' % (
                    _cpu_list(self.for_fills), for_requests, fills_to_move,
                    MOVE_REQUESTS_FROM >> 20, for_requests))

    def confinement(self, size):
        """A Confinement for one background fill of ``size`` bytes (None: unknown).

        UNCONFINED when fills are not limited.
        """
        if self.for_fills is None:
            return UNCONFINED
        return Confinement(self._placement, size is None or size >= MOVE_REQUESTS_FROM)


class _Placement:
    """Where this process's threads run, changed under one lock.

    Fill threads run on the fill CPUs. While the long fills running can keep
    every fill CPU busy (``CPUS_PER_FILL`` each), every other thread keeps to
    the rest: new threads inherit that from the thread that starts them, and
    once they no longer can (a long fill ended, or a download released it)
    every thread gets every CPU back. On a node with many CPUs a single fill
    thus moves nothing.
    """

    def __init__(self, for_fills, usable):
        self.for_fills = for_fills
        self.usable = usable
        self._for_others = usable - for_fills
        self._lock = threading.Lock()
        self._fill_threads = set()
        self._long = {}   # thread id: the long fill it runs for
        self._moved = False

    def confine(self, tid, long_fill=None):
        """Put fill thread ``tid`` on the fill CPUs; whether that worked.

        ``long_fill`` names the fill if it is a long one (any object, the
        same for all its threads).
        """
        with self._lock:
            # On failure (a cpuset changed under us) the thread runs unconfined.
            if not _set_affinity(tid, self.for_fills):
                return False
            self._fill_threads.add(tid)
            if long_fill is not None:
                self._long[tid] = long_fill
                self._settle()
            return True

    def free(self, tid):
        """Fill thread ``tid`` is one no more: it goes where the other threads are."""
        with self._lock:
            self._fill_threads.discard(tid)
            _set_affinity(tid, self._for_others if self._moved else self.usable)
            if self._long.pop(tid, None) is not None:
                self._settle()

    def _settle(self):
        """Move the other threads if the long fills running now can, or no
        longer can, keep every fill CPU busy."""
        fills = len(set(self._long.values()))
        busy = fills * CPUS_PER_FILL >= len(self.for_fills)
        if busy != self._moved:
            self._moved = busy
            cpus = self._for_others if busy else self.usable
            LOG.debug('%d long fill(s) running: other threads now on CPU(s) %s',
                      fills, _cpu_list(cpus))
            self._move_others(cpus)

    def _move_others(self, cpus):
        """Put every thread but the fill threads on ``cpus``, in this process and in
        the node's other server processes."""
        tids = _threads_in(TASKS)
        for pid in _sibling_processes():
            tids += _threads_in('/proc/%d/task' % pid)
        for tid in tids:
            if tid not in self._fill_threads:
                _set_affinity(tid, cpus)


def _threads_in(tasks):
    """The thread ids in a process's ``task`` directory (none if it is gone)."""
    try:
        return [int(name) for name in os.listdir(tasks)]
    except OSError as exc:
        LOG.debug('Could not list the threads in %s: %s', tasks, exc)
        return []


def _sibling_processes():
    """The node's other server processes: the other children of the process
    named by SERVER_PID_ENV, if it started this one."""
    try:
        parent = int(os.environ.get(SERVER_PID_ENV, ''))
    except ValueError:
        return []
    if parent != os.getppid():
        return []   # not one of its server processes (or orphaned)
    me = os.getpid()
    siblings = []
    for name in os.listdir('/proc'):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open('/proc/%s/stat' % name, 'rb') as f:
                stat = f.read()
        except OSError:
            continue   # ended meanwhile
        # "pid (command) state ppid ...": the command may hold spaces and ")".
        fields = stat[stat.rindex(b')') + 2:].split()
        if len(fields) > 1 and int(fields[1]) == parent:
            siblings.append(int(name))
    return siblings


class Confinement:
    """The threads and processes of one fill, kept to the fill CPUs until ``release()``.

    Each thread of the fill calls ``enter()`` as it starts and ``leave()`` as
    it ends, and the fill ``adopt()``s each process it starts and
    ``disown()``s it before reaping it; ``release()`` (from any thread)
    widens the ones still running and makes later calls do nothing. Only
    live ones are touched: an id may be reused once its owner has ended.
    """

    def __init__(self, placement, long_fill):
        self._placement = placement
        self._long_fill = long_fill
        self._lock = threading.Lock()
        self._threads = set()
        self._processes = set()
        self._released = False

    def enter(self):
        """Confine the calling thread to the fill CPUs, unless released already."""
        with self._lock:
            if self._released:
                return
            tid = threading.get_native_id()
            if self._placement.confine(tid, self if self._long_fill else None):
                self._threads.add(tid)

    def leave(self):
        """End the calling thread's confinement (a no-op if release() came first)."""
        with self._lock:
            tid = threading.get_native_id()
            if tid in self._threads:
                self._threads.discard(tid)
                self._placement.free(tid)

    def adopt(self, pid):
        """Confine a process the fill started (a digester), unless released already."""
        with self._lock:
            if not self._released and _set_affinity(pid, self._placement.for_fills):
                self._processes.add(pid)

    def disown(self, pid):
        """Forget a process before it is reaped (its id may then be reused)."""
        with self._lock:
            self._processes.discard(pid)

    def release(self):
        """Free the fill's threads and processes, running and to come.

        Its threads then go where the process's other threads are (every CPU,
        unless the long fills still running keep the fill CPUs busy), its
        processes to every CPU.
        """
        with self._lock:
            if self._released:
                return
            self._released = True
            for tid in self._threads:
                self._placement.free(tid)
            for pid in self._processes:
                _set_affinity(pid, self._placement.usable)
            self._threads.clear()
            self._processes.clear()

    def run(self, target, *args):
        """Call ``target(*args)`` confined; the body of a fill's thread."""
        self.enter()
        try:
            return target(*args)
        finally:
            self.leave()


class _Unconfined:
    """A Confinement that leaves its threads where they are."""

    def enter(self):
        pass

    def leave(self):
        pass

    def release(self):
        pass

    def adopt(self, pid):
        pass

    def disown(self, pid):
        pass

    def run(self, target, *args):
        return target(*args)


UNCONFINED = _Unconfined()


def _set_affinity(tid, cpus):
    """Set the CPUs of a thread or process; whether that worked."""
    try:
        os.sched_setaffinity(tid, cpus)
    except OSError as exc:
        LOG.debug('Could not set the CPUs of thread %d: %s', tid, exc)
        return False
    return True


def _cpu_list(cpus):
    return ','.join(str(cpu) for cpu in sorted(cpus))
