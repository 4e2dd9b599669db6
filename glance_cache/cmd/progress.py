"""Progress of caching jobs for ``glance-cache-manage queue --wait``.

``ProgressLine`` shows one job on one node; ``ProgressBlock`` shows one
image's job on several nodes, a line per node. On a terminal the lines are
redrawn in place. Anywhere else (a log file, a CI job) a line is written when
a job's state changes and at most every ``interval`` seconds in between, so
that logs stay short and readable.
"""

import collections
import os
import time

NON_TTY_INTERVAL = 3.0
# The rate is averaged over this many seconds of samples: the node saves a
# fill's progress every half second, so a shorter window would jitter.
RATE_WINDOW = 5.0
BAR_WIDTH = 20
DEFAULT_COLUMNS = 80
CURSOR_UP = '\x1b[%dA'
CLEAR_TO_END_OF_LINE = '\x1b[K'


def format_bytes(count):
    """``count`` bytes for people: 512 B, 1.5 KiB, 3.0 MiB, 1.21 GiB."""
    value = float(count)
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if value < 1024 or unit == 'TiB':
            break
        value /= 1024
    if unit == 'B':
        return '%d B' % count
    return ('%.2f %s' if value < 10 else '%.1f %s') % (value, unit)


def format_duration(seconds):
    """``seconds`` as M:SS, or H:MM:SS from an hour on."""
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return '%d:%02d:%02d' % (hours, minutes, secs)
    return '%d:%02d' % (minutes, secs)


class RateMeter:
    """Bytes per second over the last ``window`` seconds of (time, bytes done) samples."""

    def __init__(self, window=RATE_WINDOW):
        self.window = window
        self.samples = collections.deque()

    def add(self, when, done):
        """Record that ``done`` bytes were done at ``when`` (monotonic seconds)."""
        if self.samples and done < self.samples[-1][1]:
            self.samples.clear()  # a new attempt started from zero
        self.samples.append((when, done))
        # Keep one sample older than the window so the rate always spans it.
        while len(self.samples) > 2 and when - self.samples[1][0] >= self.window:
            self.samples.popleft()

    def rate(self):
        """Bytes per second, or None before two samples a moment apart."""
        if len(self.samples) < 2:
            return None
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        if t1 - t0 <= 0:
            return None
        return (d1 - d0) / (t1 - t0)


def describe(job, rate=None, label=None):
    """One line about ``job``, a record of ``GET /v2/cache/jobs/{id}``.

    The line starts with ``label``, by default the job's image id.
    """
    image_id, state = label or job['image_id'], job['state']
    done, size = job.get('bytes_done') or 0, job.get('size')
    attempts, error = job.get('attempts') or 0, job.get('last_error')
    if state == 'caching':
        if size:
            filled = min(BAR_WIDTH, BAR_WIDTH * done // size)
            text = '%s caching [%s%s] %3d%% %s / %s' % (
                image_id, '#' * filled, '.' * (BAR_WIDTH - filled), min(100 * done // size, 100),
                format_bytes(done), format_bytes(size))
        else:
            text = '%s caching %s' % (image_id, format_bytes(done))
        if rate:
            text += ' %s/s' % format_bytes(rate)
            if size and rate > 0:
                text += ' ETA %s' % format_duration((size - done) / rate)
        if attempts > 1:
            text += ' (attempt %d)' % attempts
        return text
    if state == 'queued':
        if attempts and error:
            return '%s queued, to retry after attempt %d failed: %s' % (image_id, attempts, error)
        return '%s queued' % image_id
    if state == 'cached':
        text = '%s cached, %s' % (image_id, format_bytes(size if size is not None else done))
        if job.get('started_at') and job.get('finished_at'):
            text += ' in %.1f s' % max(job['finished_at'] - job['started_at'], 0)
        return text
    if state == 'failed':
        return '%s failed after %d attempt(s): %s' % (image_id, attempts,
                                                      error or 'no reason given')
    return '%s %s' % (image_id, state)


def _is_tty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _columns(stream):
    try:
        return os.get_terminal_size(stream.fileno()).columns or DEFAULT_COLUMNS
    except (AttributeError, ValueError, OSError):
        return DEFAULT_COLUMNS


def _fit(text, stream):
    # A line wider than the terminal wraps, and a redraw would then only
    # return to the start of its last row.
    return text[:max(_columns(stream) - 1, 10)]


class _LogPace:
    """When to write a line off a terminal: on a change of state, else every ``interval``."""

    def __init__(self, interval):
        self.interval = interval
        self._last_state = None
        self._last_line_at = None

    def due(self, state, now):
        due = (state != self._last_state or self._last_line_at is None
               or now - self._last_line_at >= self.interval)
        if due:
            self._last_line_at = now
        self._last_state = state
        return due


class ProgressLine:
    """The progress of one job on ``stream``: redrawn in place on a TTY, lines otherwise."""

    def __init__(self, stream, clock=time.monotonic, interval=NON_TTY_INTERVAL, tty=None):
        self.stream = stream
        self.clock = clock
        self.interval = interval
        self.tty = _is_tty(stream) if tty is None else tty
        self.meter = RateMeter()
        self._drawn = 0
        self._pace = _LogPace(interval)

    def update(self, job):
        """Show the job's current record."""
        now = self.clock()
        if job['state'] == 'caching':
            self.meter.add(now, job.get('bytes_done') or 0)
        text = describe(job, self.meter.rate())
        if self.tty:
            self._redraw(text)
        elif self._pace.due(job['state'], now):
            self.stream.write(text + '\n')
            self.stream.flush()

    def finish(self, text):
        """End the progress with ``text`` on a line of its own."""
        if self.tty:
            self._redraw(text, final=True)
        else:
            self.stream.write(text + '\n')
        self.stream.flush()

    def _redraw(self, text, final=False):
        if not final:
            text = _fit(text, self.stream)
        pad = ' ' * max(self._drawn - len(text), 0)
        self.stream.write('\r' + text + pad + ('\n' if final else ''))
        self.stream.flush()
        self._drawn = 0 if final else len(text)


class ProgressBlock:
    """One image's job on several nodes: a title line, then a line per node.

    A node's line starts with its name. On a TTY the node lines are redrawn
    in place by ``draw``, once per poll, with the cursor moved back up over
    them; finished nodes keep their last line. Elsewhere ``update`` and
    ``finish`` write lines as ``ProgressLine`` does, and ``draw`` does nothing.
    """

    def __init__(self, stream, title, names, clock=time.monotonic, interval=NON_TTY_INTERVAL,
                 tty=None):
        self.stream = stream
        self.title = title
        self.names = list(names)
        self.clock = clock
        self.tty = _is_tty(stream) if tty is None else tty
        self.texts = {name: '%s waiting' % name for name in self.names}
        self._meters = {name: RateMeter() for name in self.names}
        self._paces = {name: _LogPace(interval) for name in self.names}
        self._drawn = False
        self._titled = False

    def update(self, name, job):
        """Show node ``name``'s current record of the job."""
        now = self.clock()
        meter = self._meters[name]
        if job['state'] == 'caching':
            meter.add(now, job.get('bytes_done') or 0)
        self.texts[name] = describe(job, meter.rate(), label=name)
        if not self.tty and self._paces[name].due(job['state'], now):
            self._write_line(self.texts[name])

    def finish(self, name, text):
        """End node ``name``'s progress with ``text``, a line that starts with the name."""
        self.texts[name] = text
        if not self.tty:
            self._write_line(text)

    def draw(self):
        """On a TTY, redraw every node's line in place."""
        if not self.tty:
            return
        if self._drawn:
            self.stream.write(CURSOR_UP % len(self.names))
        else:
            self._write_title()
        for name in self.names:
            self.stream.write('\r%s%s\n' % (_fit(self.texts[name], self.stream),
                                             CLEAR_TO_END_OF_LINE))
        self.stream.flush()
        self._drawn = True

    def _write_title(self):
        if not self._titled:
            self.stream.write(self.title + '\n')
            self._titled = True

    def _write_line(self, text):
        self._write_title()
        self.stream.write(text + '\n')
        self.stream.flush()
