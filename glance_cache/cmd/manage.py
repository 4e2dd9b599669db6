"""glance-cache-manage: administration commands.

    glance-cache-manage [--config-file F] db sync      apply database migrations
    glance-cache-manage [--config-file F] db version   print the applied migration

    glance-cache-manage [--url URL] [--os-auth-token TOKEN] queue IMAGE... [--wait]
        [--nodes all|NAME,...]
    glance-cache-manage [--url URL] [--os-auth-token TOKEN] list | delete IMAGE... |
        clear [--target cache|queue|both] | prune | clean
    glance-cache-manage [--url URL] [--os-auth-token TOKEN] nodes [--forget NAME] |
        pin IMAGE [--nodes ...] | unpin IMAGE [--nodes ...] | pins

The db commands work on the database named by the configuration; the cache
and cluster commands talk HTTP to one node (see ``glance_cache.cmd.cache_commands``
and ``glance_cache.cmd.cluster_commands``) and need no configuration file.
"""

import sys
import warnings

from oslo_config import cfg

from glance_cache import conf as gc_conf
from glance_cache.cmd import cache_commands


def _database(conf):
    # Imported here: the cache commands need neither SQLAlchemy nor Alembic.
    from glance_cache.db import api as db_api
    return db_api.Database(conf)


def _db_sync(conf):
    database = _database(conf)
    try:
        database.sync()
        print('Database is at revision %s' % database.current_revision())
    finally:
        database.dispose()
    return 0


def _db_version(conf):
    database = _database(conf)
    try:
        print(database.current_revision() or 'empty')
    finally:
        database.dispose()
    return 0


def _add_command_parsers(subparsers):
    db = subparsers.add_parser('db', help='Database schema.')
    db_sub = db.add_subparsers(dest='action')
    db_sub.required = True
    db_sub.add_parser('sync', help='Apply every pending migration.').set_defaults(
        func=_db_sync)
    db_sub.add_parser('version', help='Print the applied migration.').set_defaults(
        func=_db_version)
    cache_commands.add_parsers(subparsers)


command_opt = cfg.SubCommandOpt('command', title='Commands', handler=_add_command_parsers)

# Global options of the cache commands; they must precede the command.
client_opts = [
    cfg.StrOpt('url', metavar='URL',
               help='Direct URL of the node whose cache the cache commands manage '
                    '(default: $GLANCE_CACHE_URL, else $OS_IMAGE_URL).'),
    cfg.StrOpt('os-auth-token', metavar='TOKEN', secret=True,
               help='Token the cache commands send as X-Auth-Token '
                    '(default: $OS_AUTH_TOKEN).'),
]


def main(argv=None):
    """Parse the command line and configuration, run the command; its exit status."""
    # Registering glance_store's options loads its drivers, which import
    # eventlet; its deprecation notice says nothing to an operator running a command.
    warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')
    conf = cfg.CONF
    conf.register_cli_opts(client_opts)
    conf.register_cli_opt(command_opt)
    gc_conf.parse_config(sys.argv[1:] if argv is None else argv, conf, store_opts=False)
    return conf.command.func(conf)


if __name__ == '__main__':
    sys.exit(main())
