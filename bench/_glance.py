"""Upstream Glance as a reference node for the benchmarks (optional).

``bench/cache_api.py --glance VENV`` runs some of its parts a second time
against OpenStack Glance served from ``VENV`` (``make glance-venv`` builds
``.venv-glance`` with the release the issue's targets were set against), so
that this node's figures come with Glance's, measured in the same run on the
same machine, under the same server (gunicorn, gthread, as many processes and
threads), with the same database (a SQLite file) and store (files).

Glance runs without authentication (its ``cachemanagement`` pipeline) and
with a policy file that lets anyone do what the benchmarks do: its checks
still run on every request, as ours do.
"""

import os
import socket
import subprocess

import requests

from _common import helpers  # _common puts the project on sys.path first

# Glance's own image-cache worker takes a queued image at once since
# 2024.2; this is the release the targets in bench/cache_api.py cite.
GLANCE_REQUIREMENT = 'glance==33.0.0'

POLICY_RULES = ('add_image', 'upload_image', 'get_image', 'get_images', 'download_image',
                'modify_image', 'delete_image', 'cache_image', 'cache_list', 'cache_delete',
                'manage_image_cache')

CONFIG = """\
[DEFAULT]
bind_host = 127.0.0.1
bind_port = {port}
worker_self_reference_url = http://127.0.0.1:{port}
enabled_backends = fs:file
image_cache_dir = {workdir}/cache
log_file = {workdir}/glance-api.log
[database]
connection = sqlite:///{workdir}/glance.db
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {workdir}/images
[os_glance_staging_store]
filesystem_store_datadir = {workdir}/staging
[os_glance_tasks_store]
filesystem_store_datadir = {workdir}/tasks
[paste_deploy]
flavor = cachemanagement
config_file = {venv}/etc/glance/glance-api-paste.ini
[oslo_policy]
policy_file = {workdir}/policy.yaml
"""


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def check_venv(venv):
    """Raise SystemExit with what to do unless ``venv`` holds Glance and gunicorn."""
    for program in ('glance-manage', 'gunicorn'):
        if not os.access(os.path.join(venv, 'bin', program), os.X_OK):
            raise SystemExit('%s has no bin/%s: build it with "make glance-venv" (pip '
                             'install %s gunicorn)' % (venv, program, GLANCE_REQUIREMENT))


class GlanceNode:
    """One glance-api under gunicorn, with its own SQLite file, store and cache."""

    name = 'Glance'

    # Glance's noauth pipeline takes the identity from these headers.
    headers = {'X-Roles': 'admin', 'X-Tenant-Id': 'bench', 'X-User-Id': 'bench',
               'X-Identity-Status': 'Confirmed'}

    # Images to measure with are created one at a time: with a SQLite file,
    # Glance answers concurrent uploads with 500 "database is locked".
    setup_threads = 1

    def __init__(self, venv, workdir, workers=1, threads=16):
        self.venv = os.path.abspath(venv)
        self.workdir = os.path.abspath(workdir)
        self.workers = workers
        self.threads = threads
        self.proc = None
        self.url = None
        self.session = requests.Session()

    def start(self):
        for sub in ('cache', 'images', 'staging', 'tasks'):
            os.makedirs(os.path.join(self.workdir, sub), exist_ok=True)
        port = _free_port()
        with open(os.path.join(self.workdir, 'glance-api.conf'), 'w') as f:
            f.write(CONFIG.format(port=port, workdir=self.workdir, venv=self.venv))
        with open(os.path.join(self.workdir, 'policy.yaml'), 'w') as f:
            f.writelines('"%s": "@"\n' % rule for rule in POLICY_RULES)
        # TZ: Glance stores the entry's time as naive UTC and lists it as
        # seconds since the epoch read in local time; in UTC that is right.
        env = dict(os.environ, OS_GLANCE_CONFIG_DIR=self.workdir, TZ='UTC')
        subprocess.run([os.path.join(self.venv, 'bin', 'glance-manage'), '--config-file',
                        os.path.join(self.workdir, 'glance-api.conf'), 'db_sync'],
                       check=True, capture_output=True, env=env)
        with open(os.path.join(self.workdir, 'gunicorn.log'), 'ab') as log:
            self.proc = subprocess.Popen(
                [os.path.join(self.venv, 'bin', 'gunicorn'), '--bind', '127.0.0.1:%d' % port,
                 '--workers', str(self.workers), '--worker-class', 'gthread',
                 '--threads', str(self.threads), '--keep-alive', '75',
                 'glance.wsgi.api:application'],
                cwd=self.workdir, env=env, stdout=log, stderr=log, start_new_session=True)
        self.url = 'http://127.0.0.1:%d' % port

        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError('glance-api exited with status %s; see %s'
                                   % (self.proc.returncode, self.workdir))
            # Its first request builds much of the application: give it time.
            try:
                return requests.get(self.url + '/versions', timeout=30).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                return False

        try:
            helpers.wait_for(answers, 'glance-api to answer', timeout=120, interval=0.1,
                             error=RuntimeError)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self):
        self.session.close()
        helpers.stop_process_group(self.proc)

    def request(self, method, path, headers=None, **kwargs):
        kwargs.setdefault('timeout', 60)
        return self.session.request(method, self.url + path,
                                    headers=dict(self.headers, **(headers or {})), **kwargs)

    def create_image(self):
        """A new queued image (what common.upload uploads into)."""
        resp = self.request('POST', '/v2/images', json={
            'name': 'bench', 'disk_format': 'raw', 'container_format': 'bare'})
        assert resp.status_code == 201, resp.text
        return resp.json()

    def cached_at(self):
        """{image id: when its cache entry was committed} for every cached image.

        Glance's entry carries the moment it was written (``last_modified``,
        seconds since the epoch); its queue keeps no finish time.
        """
        body = self.request('GET', '/v2/cache').json()
        return {entry['image_id']: entry['last_modified'] for entry in body['cached_images']}

    def wait_cached(self, image_id, timeout=3600, interval=0.01):
        """When ``image_id`` was cached, once it is listed as cached."""
        return helpers.wait_for(lambda: self.cached_at().get(image_id),
                                'image %s to be cached by Glance' % image_id,
                                timeout=timeout, interval=interval)

