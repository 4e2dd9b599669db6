"""One real Keystone and two glance-cache nodes in keystone mode, shared by this package.

Keystone comes from PyPI in its own virtualenv (``.venv-keystone``, created on first use).
Where it cannot be installed or started the tests skip, except in CI, where they fail.
Node A is catalog service type ``image``, node B type ``image_remote``; they share the
image database and store, and each has a cache of its own.
"""

import os

import pytest

from tests import helpers
from tests.keystone import env


class Stack:
    def __init__(self, keystone, node_a, node_b):
        self.keystone = keystone
        self.node_a = node_a
        self.node_b = node_b


def keystone_node(workdir, keystone, shared, name):
    """A node in keystone mode; all nodes share the image database and store."""
    os.makedirs(workdir, exist_ok=True)
    options = {'DEFAULT': {'node_name': name},
               'api': {'auth_strategy': 'keystone'},
               'keystone_authtoken': keystone.authtoken_options(),
               'glance_store': {'filesystem_store_datadir': os.path.join(shared, 'images')},
               'cache': {'cache_dir': os.path.join(workdir, 'cache')}}
    return helpers.Node(workdir, 'sqlite:///%s' % os.path.join(shared, 'glance-cache.db'),
                        options)


@pytest.fixture(scope='package')
def keystone_stack(tmp_path_factory):
    try:
        env.ensure_venv(env.KEYSTONE_VENV, env.KEYSTONE_PACKAGES)
    except env.SetupError as exc:
        helpers.unavailable('Keystone from PyPI', exc)
    base = tmp_path_factory.mktemp('keystone-stack')
    keystone = env.Keystone(str(base / 'keystone'))
    nodes = []
    try:
        keystone.start()
        keystone.create_users()
        for name in ('node-a', 'node-b'):
            nodes.append(keystone_node(str(base / name), keystone, str(base), name).start())
        keystone.register_image_services({'image': nodes[0].url,
                                          'image_remote': nodes[1].url})
        yield Stack(keystone, *nodes)
    finally:
        for n in nodes:
            n.stop()
        keystone.stop()
