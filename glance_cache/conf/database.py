"""Options of the [database] group."""

from oslo_config import cfg

from glance_cache.conf import groups

database_group = cfg.OptGroup('database', title='Metadata database')

database_opts = [
    cfg.StrOpt('connection', default='sqlite:///data/glance-cache.db', secret=True,
               help='SQLAlchemy URL of the metadata database. SQLite for one node; '
                    'postgresql+psycopg2:// or mysql+pymysql:// URLs for several nodes '
                    'sharing one database. A relative SQLite path is relative to the '
                    'directory the node starts in.'),
    cfg.IntOpt('sqlite_busy_timeout', default=30, min=1,
               help='Seconds a SQLite writer waits for the database lock before failing.'),
    cfg.IntOpt('max_pool_size', default=10, min=1,
               help='Connections kept open per process (PostgreSQL and MySQL).'),
]


def register_opts(conf):
    groups.register(conf, database_group, database_opts)


def list_opts():
    return [(database_group, database_opts)]
