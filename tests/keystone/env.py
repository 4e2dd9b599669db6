"""Real Keystone (from PyPI, in its own virtualenv) and tempest on loopback, for the tests.

Nothing here needs a hand step: ``ensure_venv`` creates ``.venv-keystone`` and
``.venv-tempest`` in the repository (reused when present), ``Keystone`` serves a SQLite,
fernet-token Keystone under gunicorn on a port the OS chose and bootstraps it, and
``Keystone.register_image_services`` puts the two glance-cache nodes in its catalog.
Everything started here is stopped by ``stop``, by process group, never by name.

Run ``python -m tests.keystone.env`` (or ``tools/keystone_env.py``) to bring Keystone up,
print its URL and users, and stop it on Ctrl-C.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap

import requests

from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYSTONE_VENV = os.environ.get('GLANCE_CACHE_KEYSTONE_VENV',
                               os.path.join(ROOT, '.venv-keystone'))
TEMPEST_VENV = os.environ.get('GLANCE_CACHE_TEMPEST_VENV', os.path.join(ROOT, '.venv-tempest'))
KEYSTONE_PACKAGES = ('keystone', 'keystonemiddleware', 'gunicorn')
TEMPEST_PACKAGES = ('tempest',)
INSTALL_TIMEOUT = 900
START_TIMEOUT = 90

ADMIN_PASSWORD = 's3cret'
REGION = 'RegionOne'
# name -> (password, project, role)
USERS = {
    'glance': ('glancepw', 'service', 'service'),
    'demo': ('demopw', 'demo', 'member'),
    'demo-reader': ('readerpw', 'demo', 'reader'),
    'other': ('otherpw', 'other', 'member'),
}


class SetupError(RuntimeError):
    """Keystone or tempest could not be installed or started."""


def free_port():
    """A TCP port on loopback the OS just handed out."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def ensure_venv(path, packages, extra_args=()):
    """A virtualenv at ``path`` with ``packages``; created once, reused afterwards."""
    stamp = os.path.join(path, '.installed')
    if os.path.exists(stamp):
        return path
    python = os.path.join(path, 'bin', 'python')
    try:
        if not os.path.exists(python):
            subprocess.run([sys.executable, '-m', 'venv', path], check=True,
                           capture_output=True, timeout=INSTALL_TIMEOUT)
        subprocess.run([python, '-m', 'pip', 'install', '-q', *packages, *extra_args],
                       check=True, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.CalledProcessError as exc:
        raise SetupError('installing %s into %s failed:\n%s%s' % (
            ' '.join(packages), path, exc.stdout or '', exc.stderr or '')) from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError('installing %s into %s failed: %s' % (
            ' '.join(packages), path, exc)) from exc
    with open(stamp, 'w') as f:
        f.write(' '.join(packages) + '\n')
    return path


def wait_for(predicate, what, timeout=30, interval=0.1):
    """tests.helpers.wait_for, failing with SetupError: a stack that never came up."""
    return helpers.wait_for(predicate, what, timeout, interval, error=SetupError)


class Keystone:
    """One Keystone under gunicorn in ``workdir``, SQLite and fernet tokens."""

    def __init__(self, workdir, venv=KEYSTONE_VENV):
        self.workdir = str(workdir)
        self.venv = venv
        self.port = None
        self.url = None
        self.proc = None
        self.conf_path = os.path.join(self.workdir, 'keystone.conf')
        self.log_path = os.path.join(self.workdir, 'gunicorn.log')
        self._conn = None

    @property
    def auth_url(self):
        return self.url + '/v3'

    def _bin(self, name):
        return os.path.join(self.venv, 'bin', name)

    def _write_config(self):
        d = self.workdir
        with open(self.conf_path, 'w') as f:
            f.write(textwrap.dedent('''\
                [DEFAULT]
                log_file = {d}/keystone.log
                [database]
                connection = sqlite:///{d}/keystone.db
                [token]
                provider = fernet
                expiration = 7200
                [fernet_tokens]
                key_repository = {d}/fernet-keys
                [fernet_receipts]
                key_repository = {d}/fernet-receipts
                [credential]
                key_repository = {d}/credential-keys
                [cache]
                enabled = false
                [identity]
                # Fewer bcrypt rounds: users are created and authenticate by the dozen.
                password_hash_rounds = 4
                ''').format(d=d))
        # keystone parses sys.argv with oslo.config, so gunicorn gets no arguments:
        # it reads ./gunicorn.conf.py from its working directory.
        with open(os.path.join(d, 'gunicorn.conf.py'), 'w') as f:
            f.write(textwrap.dedent('''\
                wsgi_app = 'keystone.wsgi.api:application'
                bind = '127.0.0.1:{port}'
                workers = 2
                control_socket_disable = True
                ''').format(port=self.port))

    def _manage(self, *commands):
        """Run keystone-manage once per command (a tuple of arguments), concurrently."""
        user = subprocess.run(['id', '-un'], capture_output=True, text=True).stdout.strip()
        group = subprocess.run(['id', '-gn'], capture_output=True, text=True).stdout.strip()
        procs = []
        for args in commands:
            command = [self._bin('keystone-manage'), '--config-file', self.conf_path, *args]
            if args[0].endswith('_setup'):
                command += ['--keystone-user', user, '--keystone-group', group]
            procs.append((args[0], subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                cwd=self.workdir)))
        failures = []
        for name, proc in procs:
            try:
                output, _ = proc.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
            if proc.returncode:
                failures.append('keystone-manage %s failed:\n%s' % (name, output))
        if failures:
            raise SetupError('\n'.join(failures))

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self._write_config()
        # The key repositories do not touch the database: set them up beside db_sync.
        self._manage(('db_sync',), ('fernet_setup',), ('receipt_setup',),
                     ('credential_setup',))
        endpoint = self.auth_url + '/'
        self._manage(('bootstrap', '--bootstrap-password', ADMIN_PASSWORD,
                      '--bootstrap-admin-url', endpoint, '--bootstrap-public-url', endpoint,
                      '--bootstrap-internal-url', endpoint, '--bootstrap-region-id', REGION))
        env = dict(os.environ, OS_KEYSTONE_CONFIG_FILES=self.conf_path)
        env.pop('OS_KEYSTONE_CONFIG_DIR', None)
        log = open(self.log_path, 'ab')
        try:
            self.proc = subprocess.Popen([self._bin('gunicorn')], cwd=self.workdir, env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            log.close()
        try:
            wait_for(self._answers, 'Keystone at %s' % self.url, timeout=START_TIMEOUT)
        except SetupError as exc:
            self.stop()
            raise SetupError('Keystone did not start (%s):\n%s' % (exc, self.log())) from None
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise SetupError('Keystone exited with %s:\n%s' % (self.proc.returncode,
                                                               self.log()))
        try:
            return requests.get(self.auth_url, timeout=10).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            return False

    def log(self):
        text = ''
        for name in ('gunicorn.log', 'keystone.log'):
            try:
                with open(os.path.join(self.workdir, name), errors='replace') as f:
                    text += '--- %s\n%s\n' % (name, f.read()[-8000:])
            except OSError:
                pass
        return text

    def stop(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        helpers.stop_process_group(self.proc)

    # --- the admin API, through openstacksdk from the caller's environment

    @property
    def conn(self):
        if self._conn is None:
            import openstack
            self._conn = openstack.connect(
                auth_type='password', region_name=REGION, identity_interface='public',
                auth={'auth_url': self.auth_url, 'username': 'admin',
                      'password': ADMIN_PASSWORD, 'project_name': 'admin',
                      'user_domain_id': 'default', 'project_domain_id': 'default'})
        return self._conn

    def _role(self, name):
        from openstack import exceptions
        # ignore_missing=True, the SDK's default, is deprecated (it warns).
        try:
            return self.conn.identity.find_role(name, ignore_missing=False)
        except exceptions.NotFoundException:
            return self.conn.identity.create_role(name=name)

    def _project(self, name):
        from openstack import exceptions
        try:
            return self.conn.identity.find_project(name, domain_id='default',
                                                   ignore_missing=False)
        except exceptions.NotFoundException:
            return self.conn.identity.create_project(name=name, domain_id='default')

    def create_users(self):
        """The service project and users of ``USERS``, each with its role on its project."""
        for name, (password, project_name, role_name) in USERS.items():
            project = self._project(project_name)
            user = self.conn.identity.create_user(
                name=name, password=password, domain_id='default',
                default_project_id=project.id)
            self.conn.identity.assign_project_role_to_user(project, user, self._role(role_name))

    def register_image_services(self, services):
        """``services``: {service type: node URL}; public, internal and admin endpoints."""
        for service_type, url in services.items():
            name = 'glance' if service_type == 'image' else 'glance_%s' % service_type
            service = self.conn.identity.create_service(name=name, type=service_type)
            for interface in ('public', 'internal', 'admin'):
                self.conn.identity.create_endpoint(service_id=service.id, interface=interface,
                                                   url=url, region_id=REGION)

    def token(self, username='admin', password=ADMIN_PASSWORD, project='admin'):
        """A project-scoped token of a user."""
        body = {'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': username, 'domain': {'id': 'default'}, 'password': password}}},
            'scope': {'project': {'name': project, 'domain': {'id': 'default'}}}}}
        resp = requests.post(self.auth_url + '/auth/tokens', json=body, timeout=30)
        if resp.status_code != 201:
            raise SetupError('token for %s: %s %s' % (username, resp.status_code, resp.text))
        return resp.headers['X-Subject-Token']

    def user_token(self, username):
        password, project, _role = USERS[username]
        return self.token(username, password, project)

    def authtoken_options(self):
        """The [keystone_authtoken] section of a glance-cache node."""
        password, project, _role = USERS['glance']
        return {
            'www_authenticate_uri': self.auth_url,
            'auth_type': 'password',
            'auth_url': self.auth_url,
            'username': 'glance',
            'password': password,
            'project_name': project,
            'user_domain_id': 'default',
            'project_domain_id': 'default',
            'delay_auth_decision': 'false',
            'include_service_catalog': 'false',
        }


def main():
    import tempfile
    ensure_venv(KEYSTONE_VENV, KEYSTONE_PACKAGES)
    with tempfile.TemporaryDirectory(prefix='keystone-') as workdir:
        ks = Keystone(workdir)
        try:
            ks.start()
            ks.create_users()
            print('Keystone at %s (admin/%s); users: %s' % (
                ks.auth_url, ADMIN_PASSWORD,
                ', '.join('%s/%s on %s as %s' % (n, *v) for n, v in USERS.items())),
                flush=True)
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        finally:
            ks.stop()


if __name__ == '__main__':
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    main()
