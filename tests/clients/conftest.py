"""Fixtures for the real-client tests: one SQLite node per module and a glance CLI runner.

The client tests run against a single SQLite node rather than the three-backend ``node``
fixture: what they check is the wire contract with python-glanceclient and openstacksdk,
which does not depend on the database.
"""

import os
import subprocess
import sys

import pytest

from tests import helpers

GLANCE_COMMAND = os.path.join(os.path.dirname(sys.executable), 'glance')
CLI_TIMEOUT = 120


@pytest.fixture(scope='module')
def client_node(tmp_path_factory):
    """A node of its own with a SQLite database, shared by the tests of one module."""
    workdir = tmp_path_factory.mktemp('client-node')
    n = helpers.Node(workdir, 'sqlite:///%s' % (workdir / 'glance-cache.db'))
    n.start()
    yield n
    n.stop()


class GlanceCLI:
    """Runs ``glance`` against one node in token mode, with a private HOME.

    The CLI caches the image schema under ``~/.glanceclient``, so HOME is a temporary
    directory shared by the runs of one module, and no OS_* variable of the caller leaks in.
    """

    def __init__(self, url, home):
        self.url = url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
        self.env['HOME'] = str(home)

    def __call__(self, *args, token='admin', stdin='devnull', cwd=None):
        """Run ``glance <args>``; a CompletedProcess with text stdout and stderr.

        With stdin not a TTY, ``image-create`` without ``--file`` uploads whatever stdin
        holds: ``stdin='devnull'`` (the default) makes that a zero-byte upload and
        ``stdin='closed'`` runs the CLI with fd 0 closed, so it creates a record only.
        """
        command = [GLANCE_COMMAND, '--os-image-url', self.url, '--os-auth-token', token,
                   *args]
        if stdin == 'closed':
            command = ['sh', '-c', 'exec "$0" "$@" <&-', *command]
            stdin_arg = None
        elif stdin == 'devnull':
            stdin_arg = subprocess.DEVNULL
        else:
            raise ValueError('stdin must be "devnull" or "closed", not %r' % (stdin,))
        return subprocess.run(command, stdin=stdin_arg, capture_output=True, text=True,
                              env=self.env, cwd=cwd, timeout=CLI_TIMEOUT)


@pytest.fixture(scope='module')
def glance(client_node, tmp_path_factory):
    return GlanceCLI(client_node.url, tmp_path_factory.mktemp('glance-home'))
