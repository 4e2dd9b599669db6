"""glance-cache-manage: administration commands.

    glance-cache-manage [--config-file F] db sync      apply database migrations
    glance-cache-manage [--config-file F] db version   print the applied migration
"""

import sys

from oslo_config import cfg

from glance_cache import wsgi
from glance_cache.db import api as db_api


def _db_sync(conf):
    database = db_api.Database(conf)
    try:
        database.sync()
        print('Database is at revision %s' % database.current_revision())
    finally:
        database.dispose()
    return 0


def _db_version(conf):
    database = db_api.Database(conf)
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


command_opt = cfg.SubCommandOpt('command', title='Commands', handler=_add_command_parsers)


def main(argv=None):
    conf = cfg.CONF
    conf.register_cli_opt(command_opt)
    wsgi.parse_config(sys.argv[1:] if argv is None else argv, conf)
    return conf.command.func(conf)


if __name__ == '__main__':
    sys.exit(main())
