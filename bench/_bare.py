"""A WSGI application that does nothing, served as glance-cache-api serves a node.

The many part's reference for the server itself: gunicorn with the same
worker class, threads per process, keep-alive and number of processes as
``glance-cache-api`` (see ``glance_cache/cmd/api.py``), answering every
request with two bytes of JSON and nothing else. What a burst costs above
it is the node's own work (its middleware, policy, database, queue, fills)
and not gunicorn's handing of each request between its threads.
"""

import os
import re
import subprocess
import sys

from glance_cache.cmd import api as api_cmd
from glance_cache.conf import default as default_conf

from _common import helpers

BODY = b'{}'
HEADERS = [('Content-Type', 'application/json'), ('Content-Length', str(len(BODY)))]
LISTENING = re.compile(r'Listening at: (http://\S+)')
START_TIMEOUT = 30


def application(environ, start_response):
    start_response('200 OK', HEADERS)
    return [BODY]


def _default(name):
    return next(opt.default for opt in default_conf.server_opts if opt.name == name)


class BareServer:
    """gunicorn serving ``application`` on loopback: ``start()``, ``url``, ``stop()``."""

    def __init__(self, directory, workers=1):
        self.directory = directory
        self.workers = workers
        self.log_path = os.path.join(directory, 'bare-gunicorn.log')
        self.proc = None
        self.url = None

    def start(self):
        os.makedirs(self.directory, exist_ok=True)
        command = [sys.executable, '-m', 'gunicorn',
                   '--worker-class', api_cmd.GUNICORN_WORKER_CLASS,
                   '--threads', str(_default('threads')), '--workers', str(self.workers),
                   '--keep-alive', str(api_cmd.GUNICORN_KEEPALIVE),
                   '--bind', '127.0.0.1:0', '--chdir', os.path.dirname(os.path.abspath(__file__)),
                   '_bare:application']
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=log,
                                         start_new_session=True)

        def listening():
            with open(self.log_path, errors='replace') as f:
                match = LISTENING.search(f.read())
            if match:
                self.url = match.group(1)
                return True
            if self.proc.poll() is not None:
                raise RuntimeError('gunicorn exited with status %s' % self.proc.returncode)
            return False

        try:
            helpers.wait_for(listening, 'the bare gunicorn to listen', timeout=START_TIMEOUT,
                             interval=0.02, error=RuntimeError)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self):
        helpers.stop_process_group(self.proc)
