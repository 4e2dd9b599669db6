"""FillCpus: background fills run off the CPUs kept for serving requests.

A fill is CPU work: MD5 and the multihash each take a core at full speed.
On a node with few CPUs a background fill (one started by ``PUT
/v2/cache``) then competes with the threads answering requests, and
lowering its priority does not help: a woken request thread still waits
behind it on whichever CPU it lands. Keeping the fill's threads off
``[cache] fill_cpu_reserve`` CPUs does, because the kernel then places the
request threads on the CPUs the fill leaves free.

The limit is per fill (``Confinement``). It binds only the threads the fill
itself runs, and a client downloading the image while it fills lifts it for
that fill: its data is then awaited, not background work.

Thread affinity exists on Linux only, and under eventlet every green thread
is the process's one real thread, so there fills are not confined.

    >>> FillCpus(reserve=0).confinement() is UNCONFINED
    True
"""

import logging
import os
import sys
import threading

LOG = logging.getLogger(__name__)


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

    def describe(self):
        """A phrase for the log: where background fills run."""
        if self.for_fills is None:
            return 'on every CPU'
        return 'on CPU(s) %s, leaving %s to requests' % (
            _cpu_list(self.for_fills), _cpu_list(self.usable - self.for_fills))

    def confinement(self):
        """A Confinement for one background fill (UNCONFINED when fills are not limited)."""
        if self.for_fills is None:
            return UNCONFINED
        return Confinement(self.for_fills, self.usable)


class Confinement:
    """The threads and processes of one fill, kept to the fill CPUs until ``release()``.

    Each thread of the fill calls ``enter()`` as it starts and ``leave()`` as
    it ends, and the fill ``adopt()``s each process it starts and
    ``disown()``s it before reaping it; ``release()`` (from any thread)
    widens the ones still running and makes later calls do nothing. Only
    live ones are touched: an id may be reused once its owner has ended.
    """

    def __init__(self, cpus, usable):
        self._cpus = cpus
        self._usable = usable
        self._lock = threading.Lock()
        self._threads = set()
        self._processes = set()
        self._released = False

    def enter(self):
        """Confine the calling thread to the fill CPUs, unless released already."""
        with self._lock:
            if self._released:
                return
            # On failure (a cpuset changed under us) the thread runs unconfined.
            if _set_affinity(0, self._cpus):
                self._threads.add(threading.get_native_id())

    def leave(self):
        """End the calling thread's confinement (a no-op if release() came first)."""
        with self._lock:
            tid = threading.get_native_id()
            if tid in self._threads:
                self._threads.discard(tid)
                _set_affinity(0, self._usable)

    def adopt(self, pid):
        """Confine a process the fill started (a digester), unless released already."""
        with self._lock:
            if not self._released and _set_affinity(pid, self._cpus):
                self._processes.add(pid)

    def disown(self, pid):
        """Forget a process before it is reaped (its id may then be reused)."""
        with self._lock:
            self._processes.discard(pid)

    def release(self):
        """Let the fill's threads and processes, running and to come, use every CPU."""
        with self._lock:
            if self._released:
                return
            self._released = True
            for tid in self._threads | self._processes:
                _set_affinity(tid, self._usable)
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
