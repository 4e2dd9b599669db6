"""tempest, from PyPI in its own virtualenv, against Keystone and the two keystone-mode nodes.

Runs the project's tempest plugin (``tempest_plugin``) and tempest's own
``tempest.api.image.v2.admin.test_image_caching``; none of them may be skipped.
"""

import os
import re
import subprocess
import textwrap

import pytest

from tests import helpers
from tests.keystone import env

# The first run on a fresh clone also installs Keystone and tempest into their venvs.
pytestmark = pytest.mark.timeout(1500)

PLUGIN_TESTS = 8
TEMPEST_CACHE_TESTS = 2
REGEX = r'^(tempest_plugin\.|tempest\.api\.image\.v2\.admin\.test_image_caching\.)'
RUN_TIMEOUT = 600


@pytest.fixture(scope='module')
def tempest_venv():
    try:
        env.ensure_venv(env.TEMPEST_VENV, env.TEMPEST_PACKAGES)
    except env.SetupError as exc:
        helpers.unavailable('tempest from PyPI', exc)
    # The plugin, from this checkout; its entry point makes tempest find it.
    result = subprocess.run(
        [os.path.join(env.TEMPEST_VENV, 'bin', 'python'), '-m', 'pip', 'install', '-q',
         '--no-deps', '-e', helpers.ROOT],
        capture_output=True, text=True, timeout=env.INSTALL_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    return env.TEMPEST_VENV


def tempest_conf(ks):
    return textwrap.dedent('''\
        [DEFAULT]
        log_file = tempest.log
        [auth]
        use_dynamic_credentials = True
        admin_username = admin
        admin_password = {password}
        admin_project_name = admin
        admin_domain_name = Default
        [identity]
        uri_v3 = {auth_url}
        auth_version = v3
        region = {region}
        [identity-feature-enabled]
        api_v2 = False
        [service_available]
        glance = True
        nova = False
        cinder = False
        neutron = False
        swift = False
        [image]
        image_caching_enabled = True
        alternate_image_endpoint = image_remote
        alternate_image_endpoint_type = public
        build_timeout = 60
        build_interval = 1
        [image-feature-enabled]
        api_v2 = True
        [glance_cache]
        enabled = True
        remote_service_type = image_remote
        large_image_size = 33554432
        cache_timeout = 60
        ''').format(password=env.ADMIN_PASSWORD, auth_url=ks.auth_url, region=env.REGION)


def totals(output):
    found = {}
    for key in ('Passed', 'Skipped', 'Failed'):
        match = re.search(r'^ - %s: (\d+)' % key, output, re.M)
        found[key.lower()] = int(match.group(1)) if match else None
    return found


def test_tempest_plugin_and_tempest_caching_tests(tempest_venv, keystone_stack, tmp_path):
    tempest = os.path.join(tempest_venv, 'bin', 'tempest')
    workspace = tmp_path / 'tempest'
    environ = {k: v for k, v in os.environ.items() if not k.startswith(('OS_', 'TEMPEST_'))}
    environ['HOME'] = str(tmp_path)  # tempest init records workspaces under ~/.tempest
    subprocess.run([tempest, 'init', str(workspace)], check=True, capture_output=True,
                   env=environ, timeout=120)
    (workspace / 'etc' / 'tempest.conf').write_text(tempest_conf(keystone_stack.keystone))
    # The cache of a node is shared state and clear empties all of it: run serially.
    result = subprocess.run([tempest, 'run', '--serial', '--regex', REGEX],
                            cwd=workspace, env=environ, capture_output=True, text=True,
                            timeout=RUN_TIMEOUT)
    output = result.stdout + result.stderr
    summary = totals(output)
    print(output[output.rfind('Totals'):] if 'Totals' in output else output[-4000:])
    assert result.returncode == 0, output[-20000:]
    assert summary == {'passed': PLUGIN_TESTS + TEMPEST_CACHE_TESTS, 'skipped': 0,
                       'failed': 0}, output[-20000:]
    assert 'test_remote_and_self_cache' in output and 'test_image_caching_cycle' in output
