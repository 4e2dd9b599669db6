"""One digest of a cache fill, computed in a process of its own.

Run by a fill as ``python -I -S digester.py FD ALGORITHM NICENESS``; it
imports nothing but the standard library, so it starts in a few
milliseconds. It lowers its priority by ``NICENESS`` and hashes the
incomplete file open as descriptor ``FD`` while the fill writes it, mapping
the file rather than copying it:

- standard input carries 8-byte little-endian byte counts, each saying the
  file now holds at least that many bytes; the process hashes up to the
  latest count it has read, then waits for the next;
- the count ``END`` says the fill has no more data; the process hashes
  what is left, prints ``HEXDIGEST BYTES`` on standard output and exits 0;
- it prints the reason on standard error and exits 1 if the file holds
  fewer bytes than announced, or if standard input ends without ``END``:
  the fill's process died, and the rest is not hashed (it checks between
  windows of the file, so it stops within one).

Hashing in another process keeps the fill's CPU work out of the server's
GIL, so the threads answering requests never wait behind it; and what is
verified is what the file holds, read back from it.

    >>> import tempfile
    >>> with tempfile.TemporaryFile() as f:
    ...     _ = f.write(b'abc'); f.flush()
    ...     r, w = os.pipe()
    ...     _ = os.write(w, (3).to_bytes(COUNT, 'little') + END); os.close(w)
    ...     digest(f.fileno(), 'md5', r)
    ('900150983cd24fb0d6963f7d28e17f72', 3)
"""

import hashlib
import mmap
import os
import select
import sys

COUNT = 8
END = b'\xff' * COUNT
WINDOW = 8 * 1024 * 1024


class Orphaned(Exception):
    """Standard input ended without END: the fill will never use the digest."""


class _Control:
    """The counts the fill sends, read as they come."""

    def __init__(self, fd):
        self._fd = fd
        self._pending = b''
        self.announced = 0
        self.ended = False
        self.closed = False

    def read(self, wait):
        """Take in what the fill sent (waiting for something if ``wait``);
        False once standard input is closed."""
        if self.closed:
            return False
        if not wait and not select.select([self._fd], [], [], 0)[0]:
            return True
        data = os.read(self._fd, 64 * 1024)
        if not data:
            self.closed = True
            return False
        self._pending += data
        whole = len(self._pending) - len(self._pending) % COUNT
        for start in range(0, whole, COUNT):
            message = self._pending[start:start + COUNT]
            if message == END:
                self.ended = True
            else:
                self.announced = int.from_bytes(message, 'little')
        self._pending = self._pending[whole:]
        return True


def digest(fd, algorithm, control):
    """``(hexdigest, bytes)`` of file ``fd``, hashed as ``control`` announces data.

    Raises Orphaned if ``control`` closes without END, EOFError if the file
    holds less than announced.
    """
    hasher = hashlib.new(algorithm)
    offset = 0
    counts = _Control(control)
    while counts.read(wait=True):
        while offset < counts.announced and counts.read(wait=False):
            offset = _hash_up_to(hasher, fd, offset,
                                 min(counts.announced, offset + WINDOW))
    if not counts.ended:
        raise Orphaned('the fill stopped sending counts without its end '
                       '(its process died); %d bytes hashed' % offset)
    offset = _hash_up_to(hasher, fd, offset, counts.announced)
    return hasher.hexdigest(), offset


def _hash_up_to(hasher, fd, offset, end):
    """Hash bytes ``offset`` to ``end`` of the file, mapped rather than copied."""
    if end <= offset:
        return offset
    if os.fstat(fd).st_size < end:
        raise EOFError('the file holds %d bytes, not the %d announced'
                       % (os.fstat(fd).st_size, end))
    while offset < end:
        # A window at a time: the mapped pages count in this process's RSS.
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        stop = min(end, start + WINDOW)
        try:
            mapped = mmap.mmap(fd, stop - start, access=mmap.ACCESS_READ, offset=start)
        except OSError:
            # A file system that cannot map files: read it instead.
            data = os.pread(fd, stop - offset, offset)
            if len(data) != stop - offset:
                raise EOFError('the file ends at byte %d, before the %d announced'
                               % (offset + len(data), end)) from None
            hasher.update(data)
        else:
            with mapped:
                view = memoryview(mapped)
                try:
                    hasher.update(view[offset - start:])
                finally:
                    view.release()
        offset = stop
    return end


def main(argv):
    fd, algorithm = int(argv[1]), argv[2]
    os.nice(int(argv[3]))
    try:
        hexdigest, size = digest(fd, algorithm, sys.stdin.fileno())
    except (Orphaned, EOFError, OSError, ValueError) as exc:
        sys.stderr.write('%s\n' % exc)
        return 1
    sys.stdout.write('%s %d\n' % (hexdigest, size))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
