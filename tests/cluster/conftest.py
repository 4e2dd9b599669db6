"""Fixtures of the cluster tests: nodes sharing one PostgreSQL or MariaDB database and store."""

import os

import pytest

from tests import helpers

# Short enough that a stopped node is reported down within seconds.
HEARTBEAT_INTERVAL = 0.3
NODE_TIMEOUT = 2.0


class Cluster:
    """Nodes named node1, node2, ... on one database and one file store."""

    def __init__(self, workdir, db_url):
        self.workdir = str(workdir)
        self.db_url = db_url
        self.store_dir = os.path.join(self.workdir, 'images')
        self.nodes = {}
        # Passing requests on is admin-only by default; opened here to members so
        # that a target's own refusal of a member's forwarded request shows.
        os.makedirs(self.workdir, exist_ok=True)
        self.policy_file = helpers.policy_file(os.path.join(self.workdir, 'policy.yaml'),
                                               {'cache_forward': 'role:reader'})

    def start_node(self, name, cache_options=None):
        options = {
            'DEFAULT': {'node_name': name},
            'glance_store': {'filesystem_store_datadir': self.store_dir},
            'cluster': {'heartbeat_interval': str(HEARTBEAT_INTERVAL),
                        'node_timeout': str(NODE_TIMEOUT)},
            'oslo_policy': {'policy_file': self.policy_file},
        }
        if cache_options:
            options['cache'] = {k: str(v) for k, v in cache_options.items()}
        node = helpers.Node(os.path.join(self.workdir, name), self.db_url, options)
        node.name = name
        node.cache_dir = os.path.join(node.workdir, 'data', 'cache')
        self.nodes[name] = node
        node.start()
        self.wait_until_up(name)
        return node

    def view(self, via='node1'):
        resp = self.nodes[via].request('GET', '/v2/cache/cluster')
        assert resp.status_code == 200, resp.text
        return {n['name']: n for n in resp.json()['nodes']}

    def wait_until_up(self, name, via=None):
        via = via or name
        helpers.wait_for(lambda: self.view(via).get(name, {}).get('state') == 'up',
                         '%s to be up' % name)

    def wait_until_down(self, name, via='node1'):
        helpers.wait_for(lambda: self.view(via)[name]['state'] == 'down',
                         '%s to be reported down' % name, timeout=NODE_TIMEOUT * 5)

    def forget(self, name, via='node1'):
        """Stop a node and remove it from the registry, so later fan-outs do not see it."""
        self.nodes.pop(name).stop()
        self.wait_until_down(name, via)
        resp = self.nodes[via].request('DELETE', '/v2/cache/cluster/%s' % name)
        assert resp.status_code == 204, resp.text

    def stop(self):
        for node in self.nodes.values():
            node.stop()


@pytest.fixture(scope='module', params=('postgresql', 'mysql'))
def cluster(request, tmp_path_factory, throwaway_db_factory):
    """Three nodes on one database (PostgreSQL, then MariaDB) and one store."""
    c = Cluster(tmp_path_factory.mktemp('cluster-%s' % request.param),
                throwaway_db_factory(request.param))
    c.backend = request.param
    try:
        for name in ('node1', 'node2', 'node3'):
            c.start_node(name)
        yield c
    finally:
        c.stop()
