"""A real HTTP image store with injectable faults, for glance_store's http driver.

The node reads image data through glance_store; its http driver fetches an
image location that is an ``http://`` URL with a plain GET. ``FaultyStore``
is a threaded HTTP server in the test process that serves image bytes at such
URLs, behaving per request as the test's plan says: answer 503, drop the
connection, serve corrupted bytes, serve slowly, close the connection
mid-stream, or stop mid-stream (without closing) until the test releases it.
The node under test is a real process with nothing mocked: the faults reach
its caching worker exactly as a broken store would.

What the node sees (glance_store 5.x ``_drivers/http.py``): a 5xx answer
raises ``BadStoreUri``, a refused or dropped connection ``RemoteServiceUnavailable``,
a body cut short urllib3's ``ProtocolError`` (from the read after the short
one); only a 404 is ``NotFound``. The
worker therefore treats all these faults as transient (retried) and only data
failing verification as permanent. The driver reads 4 MiB per chunk, so a
fill's progress moves in 4 MiB steps.

Usage::

    store = FaultyStore()
    url = store.add(data, plan=[FAIL_503, DROP, OK])  # two failures, then data
    point_image_at(node, image['id'], url)
    ...
    store.close()
"""

import contextlib
import http.server
import socket
import sqlite3
import threading

MiB = 1024 * 1024

OK = 'ok'
FAIL_503 = '503'
DROP = 'drop'          # close the connection without answering
CORRUPT = 'corrupt'    # the right length, one byte changed

SEND_CHUNK = 64 * 1024


def hold(at):
    """Send ``at`` bytes, then send nothing (the connection stays open) until released."""
    return ('hold', at)


def cut(at):
    """Send ``at`` bytes of the promised length, then close the connection."""
    return ('cut', at)


def slow(rate):
    """Send at ``rate`` bytes per second."""
    return ('slow', rate)


def point_image_at(node, image_id, url):
    """Make ``url`` the data location of an image in the node's SQLite database.

    The image API has no call to set locations (Glance's locations API is not
    part of glance-cache), so a test that needs an image stored behind an
    http:// URL creates it with real data through the API, which records its
    size, checksum and multihash, and then rewrites the ``location`` column of
    its row. The node reads the row afresh for every fill and download.
    """
    assert node.db_url.startswith('sqlite:///'), node.db_url
    with contextlib.closing(sqlite3.connect(node.db_url[len('sqlite:///'):],
                                            timeout=30)) as conn:
        with conn:
            changed = conn.execute('UPDATE images SET location = ? WHERE id = ?',
                                   (url, image_id)).rowcount
    assert changed == 1, 'no image %s in the database' % image_id


class StoredImage:
    """One URL of the store: its data, its plan, and what happened so far."""

    def __init__(self, data, plan):
        self.data = data
        self.plan = list(plan) or [OK]
        self.requests = 0
        self.holding = threading.Event()  # a request is stopped at its hold point
        self.released = threading.Event()
        self._lock = threading.Lock()

    def next_action(self):
        """The action for the next request: the plan's, the last one repeating."""
        with self._lock:
            action = self.plan[min(self.requests, len(self.plan) - 1)]
            self.requests += 1
            return action

    def release(self):
        """Let held requests send the rest of their data."""
        self.released.set()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'  # one request per connection: drops stay simple

    def log_message(self, *args):
        pass  # the server runs inside pytest; its access log is noise there

    def do_GET(self):
        store = self.server.store
        image = store.images.get(self.path)
        if image is None:
            self.send_error(404)
            return
        action = image.next_action()
        if action == DROP:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if action == FAIL_503:
            body = b'store unavailable (injected)'
            self.send_response(503)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        data = image.data
        if action == CORRUPT:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        kind, value = action if isinstance(action, tuple) else (action, None)
        if kind == 'cut':
            data = data[:value]
        try:
            self._send(store, image, data, value if kind == 'hold' else None,
                       value if kind == 'slow' else None)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the node went away (killed, or gave up on a stalled read)

    def _send(self, store, image, data, hold_at, rate):
        offset = 0
        while offset < len(data):
            if hold_at is not None and offset >= hold_at:
                image.holding.set()
                while not (image.released.wait(0.05) or store.closing.is_set()):
                    pass
                hold_at = None
                if store.closing.is_set():
                    return
            end = min(offset + SEND_CHUNK, len(data))
            if hold_at is not None:
                end = min(end, hold_at)
            self.wfile.write(data[offset:end])
            offset = end
            if rate is not None and store.closing.wait(SEND_CHUNK / rate):
                return


class FaultyStore:
    """The HTTP server on 127.0.0.1 and an OS-chosen port; see the module docstring."""

    def __init__(self):
        self.images = {}
        self._count = 0
        self.closing = threading.Event()
        self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._server.store = self
        self.url = 'http://127.0.0.1:%d' % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name='faulty-store', daemon=True)
        self._thread.start()

    def add(self, data, plan=(OK,)):
        """Serve ``data`` at a new URL following ``plan``; return the URL."""
        self._count += 1
        path = '/images/%d' % self._count
        self.images[path] = StoredImage(data, plan)
        return self.url + path

    def image(self, url):
        """The StoredImage served at ``url``."""
        return self.images[url[len(self.url):]]

    def close(self):
        """Stop serving; held requests end by dropping their connection."""
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
