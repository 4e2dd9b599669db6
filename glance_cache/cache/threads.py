"""The threads that run a cache's fills, kept for the next fill.

A fill runs in a thread of its own, so that whoever started it (the caching
worker, a download) can follow it, cancel it or notice that it stalls.
Starting a thread per fill made that thread's start a large part of a small
image's fill: ``Thread.start()`` returns only once the new thread runs, and
on a busy node that means waiting for the GIL. So a thread that finishes a
fill waits for the next one, for ``IDLE_SECONDS``, before it ends; a fill that
finds no waiting thread gets a new one. There is no upper bound: the caching
worker bounds its own fills, and a download never waits for a thread.

>>> import threading
>>> threads = FillThreads()
>>> done = threading.Event()
>>> threads.run('fill-example', done.set)
>>> done.wait(5)
True
"""

import logging
import os
import queue
import threading
import weakref

LOG = logging.getLogger(__name__)

# How long a thread waits for another fill before it ends.
IDLE_SECONDS = 60.0
IDLE_NAME = 'fill-idle'


class FillThreads:
    """Daemon threads running fills: ``run(name, target, *args)``; see the module docstring."""

    def __init__(self, idle_seconds=IDLE_SECONDS):
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._tasks = queue.Queue()  # pure Python: eventlet's patching makes it green
        # Threads waiting for a task, less the tasks put for them and not yet taken.
        self._idle = 0
        self._started = 0
        # Threads do not survive a fork: a child starts with none.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: ref() and ref()._forget_threads())

    def _forget_threads(self):
        self._lock = threading.Lock()
        self._tasks = queue.Queue()
        self._idle = 0

    @property
    def idle(self):
        """How many threads wait for a fill now."""
        return self._idle

    @property
    def started(self):
        """How many threads were started in all (each one reused until idle too long)."""
        return self._started

    def run(self, name, target, *args):
        """Call ``target(*args)`` in a thread named ``name`` for the call's length.

        ``target`` should not raise: an exception is logged and the thread
        goes on to the next fill.
        """
        task = (name, target, args)
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._tasks.put(task)
                return
            self._started += 1
        threading.Thread(target=self._serve, args=(task,), name=name, daemon=True).start()

    def _serve(self, task):
        thread = threading.current_thread()
        while task is not None:
            name, target, args = task
            thread.name = name
            try:
                target(*args)
            except Exception:
                LOG.exception('A fill thread (%s) failed', name)
            thread.name = IDLE_NAME
            task = self._next()

    def _next(self):
        """The next task, or None when none came for ``idle_seconds`` (the thread ends)."""
        with self._lock:
            self._idle += 1
        while True:
            try:
                return self._tasks.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    # A task put since the timeout was counted against the
                    # idle threads, this one possibly: it stays for it.
                    if self._tasks.empty():
                        self._idle -= 1
                        return None
