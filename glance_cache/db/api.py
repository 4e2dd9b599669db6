"""Every query glance-cache issues goes through ``Database``.

Rows leave this module as plain dicts (an image with ``properties`` and
``tags``), so the API layer never holds a connection.

SQLite, the embedded default, serves many threads at once here: WAL mode lets
readers run beside a writer, and writers open their transaction with
``BEGIN IMMEDIATE`` so they queue on the busy timeout instead of failing with
"database is locked" when a read transaction tries to upgrade to a write.
"""

import contextlib
import datetime
import json
import logging
import os

import alembic.command
import alembic.config
import sqlalchemy as sa

from glance_cache import errors
from glance_cache.db import models

LOG = logging.getLogger(__name__)

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), 'migrations')

SORT_KEYS = ('created_at', 'updated_at', 'name', 'status', 'size', 'id', 'visibility',
             'owner', 'disk_format', 'container_format', 'min_disk', 'min_ram')

# What NULL sorts as, per column type, so that keyset paging has a total order.
_NULL_SORTS_AS = {'name': '', 'owner': '', 'disk_format': '', 'container_format': '',
                  'size': -1}

_images = models.images
_props = models.image_properties
_tags = models.image_tags
_nodes = models.nodes
_held = models.node_images
_pins = models.image_pins

# The node_name of a pin that applies to every node, present and future.
ALL_NODES = '*'


def _one_image_query():
    """One image with its properties and tags in a single round trip.

    A row per property and per tag (``extra_kind`` 'p' or 't'), or one row
    with NULL extras for an image that has neither. The id is matched inside
    each branch of the union so that no database builds the whole union.
    """
    image_id = sa.bindparam('image_id')
    extras = sa.union_all(
        sa.select(sa.literal('p').label('kind'), _props.c.name.label('name'),
                  _props.c.value.label('value')).where(_props.c.image_id == image_id),
        sa.select(sa.literal('t').label('kind'), _tags.c.value.label('name'),
                  sa.null().label('value')).where(_tags.c.image_id == image_id),
    ).subquery('extras')
    return (sa.select(_images, extras.c.kind.label('extra_kind'),
                      extras.c.name.label('extra_name'), extras.c.value.label('extra_value'))
            .select_from(_images.outerjoin(extras, sa.true()))
            .where(_images.c.id == image_id))


_ONE_IMAGE = _one_image_query()
_IMAGE_COLUMNS = tuple(c.name for c in _images.columns)


def _image_of_rows(image_id, rows):
    """The image dict of _ONE_IMAGE's rows: the image's columns, then kind, name, value."""
    if not rows:
        raise errors.ImageNotFound(image_id)
    count = len(_IMAGE_COLUMNS)
    image = dict(zip(_IMAGE_COLUMNS, rows[0][:count], strict=True))
    image['properties'], tags = {}, []
    for row in rows:
        kind, name, value = row[count:]
        if kind == 'p':
            image['properties'][name] = value
        elif kind == 't':
            tags.append(name)
    image['tags'] = sorted(tags)
    return image


class _ImageReader:
    """_ONE_IMAGE sent straight on a pooled DBAPI connection.

    Every cache request and every fill reads its image, and through a
    SQLAlchemy Connection most of that read's cost was SQLAlchemy's own
    Python (connection, transaction and result objects), taken under the
    interpreter lock that all of a server process's threads share. Here the
    statement is compiled once and the rows go through the type processors
    SQLAlchemy itself would apply. Connections still come from the engine's
    pool, with its connect events (SQLite's pragmas), pre-ping and reset on
    return.
    """

    def __init__(self, engine):
        self._engine = engine
        dialect = engine.dialect
        compiled = _ONE_IMAGE.compile(dialect=dialect)
        self._sql = compiled.string
        # Every parameter but the id is a constant (the 'p' and 't' kinds).
        self._params = compiled.construct_params({'image_id': None})
        self._positions = compiled.positiontup
        self._processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in _ONE_IMAGE.selected_columns]
        self._errors = dialect.loaded_dbapi.Error

    def _bound(self, image_id):
        params = dict(self._params, image_id=image_id)
        if self._positions is None:
            return params
        return [params[name] for name in self._positions]

    def rows(self, image_id):
        """The rows as lists of Python values; None if the DBAPI call failed
        (a connection found dead is invalidated first)."""
        conn = self._engine.raw_connection()
        cursor = None
        try:
            cursor = conn.cursor()
            cursor.execute(self._sql, self._bound(image_id))
            raw = cursor.fetchall()
        except self._errors as exc:
            if self._engine.dialect.is_disconnect(exc, conn.dbapi_connection, cursor):
                conn.invalidate(exc)
            return None
        finally:
            if cursor is not None:
                cursor.close()
            conn.close()
        processors = self._processors
        return [[value if convert is None or value is None else convert(value)
                 for value, convert in zip(row, processors, strict=True)]
                for row in raw]


def utcnow():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _create_engine(url, conf):
    url = sa.engine.make_url(url)
    if url.get_backend_name() == 'sqlite':
        if url.database and url.database != ':memory:':
            directory = os.path.dirname(os.path.abspath(url.database))
            os.makedirs(directory, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={'timeout': conf.database.sqlite_busy_timeout,
                               'check_same_thread': False})
        busy_ms = conf.database.sqlite_busy_timeout * 1000

        @sa.event.listens_for(engine, 'connect')
        def _sqlite_connect(dbapi_conn, _record):
            # We issue BEGIN ourselves (below); pysqlite's own would be DEFERRED.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute('PRAGMA journal_mode=WAL')
            cur.execute('PRAGMA synchronous=NORMAL')
            cur.execute('PRAGMA foreign_keys=ON')
            cur.execute('PRAGMA busy_timeout=%d' % busy_ms)
            cur.close()

        @sa.event.listens_for(engine, 'begin')
        def _sqlite_begin(conn):
            options = conn.get_execution_options()
            if options.get('glance_cache_one_statement'):
                # One statement reads a consistent snapshot by itself; the
                # COMMIT that ends the transaction is then none (pysqlite
                # commits only a transaction that is open).
                return
            write = options.get('glance_cache_write')
            conn.exec_driver_sql('BEGIN IMMEDIATE' if write else 'BEGIN')

        return engine
    return sa.create_engine(url, pool_size=conf.database.max_pool_size, max_overflow=10,
                            pool_pre_ping=True, pool_recycle=3600)


class Database:
    """The metadata database of one process: engine, migrations and image queries."""

    def __init__(self, conf, url=None):
        self.engine = _create_engine(url or conf.database.connection, conf)
        self._image_reader = _ImageReader(self.engine)

    # -- transactions ---------------------------------------------------------

    @contextlib.contextmanager
    def _read(self, one_statement=False):
        """A connection in a read transaction.

        With ``one_statement``, for a caller that runs one statement only, on
        SQLite no transaction is begun: a statement alone sees one snapshot,
        and the hot reads (the image behind each cache request) save a BEGIN
        and a COMMIT.
        """
        with self.engine.connect() as conn:
            if one_statement:
                conn.execution_options(glance_cache_one_statement=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def _write(self):
        with self.engine.connect() as conn:
            conn.execution_options(glance_cache_write=True)
            with conn.begin():
                yield conn

    def dispose(self):
        self.engine.dispose()

    def ping(self):
        """Raise unless the database answers a query."""
        with self._read() as conn:
            conn.execute(sa.text('SELECT 1'))

    # -- schema ---------------------------------------------------------------

    def _alembic_config(self, conn):
        cfg = alembic.config.Config()
        cfg.set_main_option('script_location', MIGRATIONS_DIR)
        cfg.attributes['connection'] = conn
        return cfg

    def sync(self):
        """Apply every migration not yet applied (``glance-cache-manage db sync``)."""
        with self.engine.begin() as conn:
            alembic.command.upgrade(self._alembic_config(conn), 'head')

    def current_revision(self):
        """The applied migration, or None on an empty database."""
        from alembic.runtime.migration import MigrationContext
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self):
        from alembic.script import ScriptDirectory
        with self.engine.connect() as conn:
            return ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()

    def ensure_schema(self):
        """Migrate an empty database; refuse to serve an outdated one.

        The API calls this at start so that a first run needs no manual step;
        a database that holds an older schema is left for ``db sync`` so that
        upgrades stay an operator's decision.
        """
        current = self.current_revision()
        head = self.head_revision()
        if current == head:
            return
        if current is None and not sa.inspect(self.engine).get_table_names():
            LOG.info('Empty database: applying migrations up to %s', head)
            try:
                self.sync()
            except sa.exc.DBAPIError:
                # Another process of this node migrated it at the same moment.
                if self.current_revision() != head:
                    raise
            return
        raise RuntimeError('Database schema is at revision %s, this code needs %s: run '
                           '"glance-cache-manage db sync"' % (current, head))

    # -- images ---------------------------------------------------------------

    def _attach(self, conn, rows):
        """Images as dicts with their properties and tags, in the order of ``rows``."""
        images = [dict(row._mapping) for row in rows]
        if not images:
            return images
        ids = [img['id'] for img in images]
        props = {i: {} for i in ids}
        tags = {i: [] for i in ids}
        for row in conn.execute(sa.select(_props).where(_props.c.image_id.in_(ids))):
            props[row.image_id][row.name] = row.value
        for row in conn.execute(sa.select(_tags).where(_tags.c.image_id.in_(ids))):
            tags[row.image_id].append(row.value)
        for img in images:
            img['properties'] = props[img['id']]
            # Sorted here, not by the database, so that every backend's
            # collation gives the same order (and _get the same as lists).
            img['tags'] = sorted(tags[img['id']])
        return images

    def _get(self, conn, image_id):
        return _image_of_rows(image_id, conn.execute(_ONE_IMAGE, {'image_id': image_id}).all())

    def image_get(self, image_id):
        """The image with ``image_id``; errors.ImageNotFound if there is none."""
        rows = self._image_reader.rows(image_id)
        if rows is None:
            # The DBAPI call failed: again through SQLAlchemy, which tries a
            # fresh connection and raises its own exceptions.
            with self._read(one_statement=True) as conn:
                return self._get(conn, image_id)
        return _image_of_rows(image_id, rows)

    def image_create(self, values, properties=None, tags=()):
        """Insert an image; ``values`` must hold every non-nullable column."""
        now = utcnow()
        row = dict(values, created_at=now, updated_at=now)
        try:
            with self._write() as conn:
                conn.execute(_images.insert().values(**row))
                self._write_properties(conn, row['id'], properties or {}, ())
                self._write_tags(conn, row['id'], tags)
                return self._get(conn, row['id'])
        except sa.exc.IntegrityError:
            raise errors.Conflict('An image with ID %s already exists' % row['id']) from None

    def image_update(self, image_id, values=None, set_properties=None,
                     remove_properties=(), tags=None, expected_status=None):
        """Change an image in one transaction and return it as it now is.

        With ``expected_status`` the change happens only if the image still has
        that status (a compare-and-set); otherwise errors.Conflict.
        """
        with self._write() as conn:
            stmt = (_images.update().where(_images.c.id == image_id)
                    .values(**dict(values or {}, updated_at=utcnow())))
            if expected_status is not None:
                stmt = stmt.where(_images.c.status == expected_status)
            if conn.execute(stmt).rowcount != 1:
                current = self._get(conn, image_id)  # raises ImageNotFound
                raise errors.Conflict('Image %s has status %s, not %s'
                                      % (image_id, current['status'], expected_status))
            self._write_properties(conn, image_id, set_properties or {}, remove_properties)
            if tags is not None:
                conn.execute(_tags.delete().where(_tags.c.image_id == image_id))
                self._write_tags(conn, image_id, tags)
            return self._get(conn, image_id)

    def image_destroy(self, image_id):
        """Delete an image's record and its pins; return it as it was."""
        with self._write() as conn:
            image = self._get(conn, image_id)
            conn.execute(_props.delete().where(_props.c.image_id == image_id))
            conn.execute(_tags.delete().where(_tags.c.image_id == image_id))
            conn.execute(_pins.delete().where(_pins.c.image_id == image_id))
            conn.execute(_images.delete().where(_images.c.id == image_id))
            return image

    @staticmethod
    def _write_properties(conn, image_id, set_properties, remove_properties):
        names = list(set_properties) + list(remove_properties)
        if names:
            conn.execute(_props.delete().where(_props.c.image_id == image_id,
                                               _props.c.name.in_(names)))
        if set_properties:
            conn.execute(_props.insert(), [{'image_id': image_id, 'name': k, 'value': v}
                                           for k, v in set_properties.items()])

    @staticmethod
    def _write_tags(conn, image_id, tags):
        unique = sorted(set(tags))
        if unique:
            conn.execute(_tags.insert(), [{'image_id': image_id, 'value': t}
                                          for t in unique])

    def image_list(self, *, project_id, is_admin, filters=None, marker=None, limit=25,
                   sort_key='created_at', sort_dir='desc'):
        """One page of the images the caller may see, and whether more follow.

        ``filters`` may hold name, status, visibility (or 'all'), owner, tags (all
        must match) and os_hidden (None lists hidden and visible images).
        Returns ``(images, has_more)``.
        """
        filters = dict(filters or {})
        query = sa.select(_images).where(self._visible_to(project_id, is_admin,
                                                          filters.get('visibility')))
        for key in ('name', 'status', 'owner'):
            if filters.get(key) is not None:
                query = query.where(_images.c[key] == filters[key])
        if filters.get('os_hidden') is not None:
            query = query.where(_images.c.os_hidden == filters['os_hidden'])
        for tag in filters.get('tags', ()):
            query = query.where(sa.exists().where(_tags.c.image_id == _images.c.id,
                                                  _tags.c.value == tag))
        column = _images.c[sort_key]
        if sort_key in _NULL_SORTS_AS:
            column = sa.func.coalesce(column, _NULL_SORTS_AS[sort_key])
        order = sa.desc if sort_dir == 'desc' else sa.asc
        with self._read() as conn:
            if marker is not None:
                mrow = conn.execute(sa.select(column.label('v'), _images.c.id)
                                    .where(_images.c.id == marker)).first()
                if mrow is None:
                    raise errors.BadRequest('Marker %s does not name an image' % marker)
                if sort_dir == 'desc':
                    after = sa.or_(column < mrow.v,
                                   sa.and_(column == mrow.v, _images.c.id < mrow.id))
                else:
                    after = sa.or_(column > mrow.v,
                                   sa.and_(column == mrow.v, _images.c.id > mrow.id))
                query = query.where(after)
            query = query.order_by(order(column), order(_images.c.id)).limit(limit + 1)
            rows = conn.execute(query).all()
            has_more = len(rows) > limit
            return self._attach(conn, rows[:limit]), has_more

    @staticmethod
    def _visible_to(project_id, is_admin, visibility):
        own = _images.c.owner == project_id
        vis = _images.c.visibility
        if visibility in (None, 'all'):
            if is_admin:
                return sa.true()
            if visibility == 'all':
                return sa.or_(vis.in_(('public', 'community')), own)
            return sa.or_(vis == 'public', own)
        if visibility in ('public', 'community') or is_admin:
            return vis == visibility
        return sa.and_(vis == visibility, own)

    # -- nodes ----------------------------------------------------------------

    def node_register(self, name, url, max_size, pinned_max_size):
        """Record a starting node (a restart keeps its holdings); its row as a dict."""
        now = utcnow()
        values = dict(url=url, started_at=now, heartbeat_at=now, max_size=max_size,
                      pinned_max_size=pinned_max_size)
        for _ in range(2):
            with self._write() as conn:
                if conn.execute(_nodes.update().where(_nodes.c.name == name)
                                .values(**values)).rowcount:
                    break
                try:
                    conn.execute(_nodes.insert().values(name=name, queued_jobs=0,
                                                        failed_jobs=0, running='[]',
                                                        **values))
                    break
                except sa.exc.IntegrityError:
                    continue  # registered by a twin at the same moment: update it
        return self.node_get(name)

    def node_heartbeat(self, name, queued_jobs, failed_jobs, running):
        """Note that a node is alive, with a snapshot of its queue; False if it is unknown."""
        with self._write() as conn:
            return bool(conn.execute(
                _nodes.update().where(_nodes.c.name == name).values(
                    heartbeat_at=utcnow(), queued_jobs=queued_jobs, failed_jobs=failed_jobs,
                    running=json.dumps(running))).rowcount)

    def node_forget(self, name):
        """Remove a node, its holdings and its own pins; False if there was none."""
        with self._write() as conn:
            conn.execute(_held.delete().where(_held.c.node_name == name))
            conn.execute(_pins.delete().where(_pins.c.node_name == name))
            return bool(conn.execute(_nodes.delete().where(_nodes.c.name == name)).rowcount)

    def node_get(self, name):
        """The row of one node as a dict (see ``node_list``), or None."""
        nodes = self.node_list(names=[name])
        return nodes[0] if nodes else None

    def node_list(self, names=None):
        """Every node (or those in ``names``) by name, with what it holds and its pins.

        Each is a dict of the ``nodes`` columns (``running`` decoded) plus
        ``cached_images``, ``cached_bytes``, ``pinned_images`` and ``pinned_bytes``.
        """
        held = (sa.select(_held.c.node_name, sa.func.count().label('n'),
                          sa.func.coalesce(sa.func.sum(_held.c.size), 0).label('b'))
                .group_by(_held.c.node_name).subquery())
        query = (sa.select(_nodes, held.c.n, held.c.b)
                 .outerjoin(held, held.c.node_name == _nodes.c.name)
                 .order_by(_nodes.c.name))
        if names is not None:
            query = query.where(_nodes.c.name.in_(list(names)))
        with self._read() as conn:
            rows = conn.execute(query).all()
            pinned = self._pinned_totals(conn)
        nodes = []
        for row in rows:
            node = dict(row._mapping)
            node['cached_images'] = int(node.pop('n') or 0)
            node['cached_bytes'] = int(node.pop('b') or 0)
            node['running'] = json.loads(node['running'] or '[]')
            node['pinned_images'], node['pinned_bytes'] = pinned.get(node['name'], (0, 0))
            nodes.append(node)
        return nodes

    def _pinned_totals(self, conn):
        """{node name: (images, bytes)} pinned to each node, counting pins to all."""
        rows = conn.execute(sa.select(_pins.c.node_name, _pins.c.image_id, _images.c.size)
                            .join(_images, _images.c.id == _pins.c.image_id)).all()
        names = conn.execute(sa.select(_nodes.c.name)).scalars().all()
        per_node = {name: {} for name in names}
        for row in rows:
            for name in (names if row.node_name == ALL_NODES else [row.node_name]):
                if name in per_node:
                    per_node[name][row.image_id] = row.size or 0
        return {name: (len(ids), sum(ids.values())) for name, ids in per_node.items()}

    # -- what each node holds ---------------------------------------------------

    def node_images_record(self, name, changes):
        """Record what node ``name`` now holds: ``{image id: size, or None if gone}``."""
        image_ids = list(changes)
        now = utcnow()
        rows = [{'node_name': name, 'image_id': image_id, 'size': size, 'cached_at': now}
                for image_id, size in changes.items() if size is not None]
        for attempt in (1, 2):
            try:
                with self._write() as conn:
                    for start in range(0, len(image_ids), 500):
                        conn.execute(_held.delete().where(
                            _held.c.node_name == name,
                            _held.c.image_id.in_(image_ids[start:start + 500])))
                    if rows:
                        conn.execute(_held.insert(), rows)
                return
            except sa.exc.IntegrityError:
                # A row inserted meanwhile by another process (the heartbeat's
                # repair): the second attempt deletes it first.
                if attempt == 2:
                    raise

    def node_images_sync(self, name, snapshot):
        """Make the holdings of node ``name`` match its cache.

        ``snapshot()`` returns what the cache holds ({image id: size}); it is
        taken after the recorded rows are read, so that a commit recorded
        meanwhile by one of the node's processes is never removed as stale.
        Returns ``(added, removed)`` counts; both are 0 when nothing had drifted.
        """
        with self._read() as conn:
            recorded = dict(conn.execute(sa.select(_held.c.image_id, _held.c.size)
                                         .where(_held.c.node_name == name)).all())
        present = snapshot()
        stale = [i for i in recorded if i not in present or recorded[i] != present[i]]
        missing = [i for i in present if i not in recorded or recorded[i] != present[i]]
        changes = dict.fromkeys(stale)
        changes.update((image_id, present[image_id]) for image_id in missing)
        if changes:
            self.node_images_record(name, changes)
        return len(missing), len(stale)

    def image_holders(self, image_id):
        """The nodes (dicts as in ``node_list``, without totals) holding ``image_id``."""
        with self._read() as conn:
            rows = conn.execute(sa.select(_nodes).join(_held, _held.c.node_name == _nodes.c.name)
                                .where(_held.c.image_id == image_id)
                                .order_by(_nodes.c.name)).all()
        return [dict(row._mapping) for row in rows]

    def node_images_orphaned(self, name):
        """Images node ``name`` holds whose image record is gone or no longer active."""
        query = (sa.select(_held.c.image_id)
                 .outerjoin(_images, _images.c.id == _held.c.image_id)
                 .where(_held.c.node_name == name,
                        sa.or_(_images.c.id.is_(None), _images.c.status != 'active')))
        with self._read() as conn:
            return conn.execute(query).scalars().all()

    # -- pins -------------------------------------------------------------------

    def pin_add(self, image_id, node_names, created_by=None):
        """Pin ``image_id`` to ``node_names`` (ALL_NODES for every node); new pins' names."""
        added = []
        with self._write() as conn:
            self._get(conn, image_id)  # raises ImageNotFound
            existing = set(conn.execute(sa.select(_pins.c.node_name)
                                        .where(_pins.c.image_id == image_id)).scalars())
            now = utcnow()
            for node_name in node_names:
                if node_name in existing:
                    continue
                try:
                    with conn.begin_nested():
                        conn.execute(_pins.insert().values(
                            image_id=image_id, node_name=node_name, created_at=now,
                            created_by=created_by))
                except sa.exc.IntegrityError:
                    continue  # pinned at the same moment by another request
                added.append(node_name)
        return added

    def pin_remove(self, image_id, node_names=None):
        """Remove the pins of ``image_id`` to ``node_names`` (None: all); names removed."""
        with self._write() as conn:
            query = sa.select(_pins.c.node_name).where(_pins.c.image_id == image_id)
            if node_names is not None:
                query = query.where(_pins.c.node_name.in_(list(node_names)))
            names = conn.execute(query).scalars().all()
            if names:
                conn.execute(_pins.delete().where(_pins.c.image_id == image_id,
                                                  _pins.c.node_name.in_(names)))
        return names

    def pin_list(self, image_id=None):
        """Pins, oldest first: dicts of image_id, node_name, created_at, created_by, size."""
        query = (sa.select(_pins, _images.c.size)
                 .join(_images, _images.c.id == _pins.c.image_id)
                 .order_by(_pins.c.created_at, _pins.c.image_id, _pins.c.node_name))
        if image_id is not None:
            query = query.where(_pins.c.image_id == image_id)
        with self._read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def pins_of_node(self, name):
        """The images pinned to node ``name`` (directly or to all), oldest pin first.

        Each is a dict of image_id, size, status and pinned_at.
        """
        query = (sa.select(_pins.c.image_id, sa.func.min(_pins.c.created_at).label('pinned_at'),
                           _images.c.size, _images.c.status)
                 .join(_images, _images.c.id == _pins.c.image_id)
                 .where(_pins.c.node_name.in_((name, ALL_NODES)))
                 .group_by(_pins.c.image_id, _images.c.size, _images.c.status)
                 .order_by(sa.func.min(_pins.c.created_at), _pins.c.image_id))
        with self._read() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
