"""The SQL schema of the metadata database, as SQLAlchemy tables.

Migrations under migrations/ create and change these tables; tests compare the
migrated schema with this module so the two never drift.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()

# Microsecond timestamps everywhere: MySQL's DATETIME drops them unless asked.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb')

images = sa.Table(
    'images', metadata,
    sa.Column('id', sa.String(36), primary_key=True),
    sa.Column('name', sa.String(255)),
    sa.Column('status', sa.String(30), nullable=False),
    sa.Column('visibility', sa.String(20), nullable=False),
    sa.Column('protected', sa.Boolean, nullable=False),
    sa.Column('os_hidden', sa.Boolean, nullable=False),
    sa.Column('owner', sa.String(255)),
    sa.Column('disk_format', sa.String(20)),
    sa.Column('container_format', sa.String(20)),
    sa.Column('size', sa.BigInteger),
    sa.Column('virtual_size', sa.BigInteger),
    sa.Column('checksum', sa.String(32)),
    sa.Column('os_hash_algo', sa.String(64)),
    sa.Column('os_hash_value', sa.String(128)),
    sa.Column('min_disk', sa.Integer, nullable=False),
    sa.Column('min_ram', sa.Integer, nullable=False),
    sa.Column('location', sa.Text),
    sa.Column('created_at', Timestamp, nullable=False),
    sa.Column('updated_at', Timestamp, nullable=False),
    sa.Index('ix_images_created_at_id', 'created_at', 'id'),
    sa.Index('ix_images_owner', 'owner'),
    sa.Index('ix_images_status', 'status'),
    sa.Index('ix_images_visibility', 'visibility'),
)

image_properties = sa.Table(
    'image_properties', metadata,
    sa.Column('image_id', sa.String(36), sa.ForeignKey('images.id', ondelete='CASCADE'),
              primary_key=True),
    sa.Column('name', sa.String(255), primary_key=True),
    sa.Column('value', sa.Text, nullable=False),
)

image_tags = sa.Table(
    'image_tags', metadata,
    sa.Column('image_id', sa.String(36), sa.ForeignKey('images.id', ondelete='CASCADE'),
              primary_key=True),
    sa.Column('value', sa.String(255), primary_key=True),
)

# -- several nodes (DESIGN.md section 6) --------------------------------------

# One row per node of the cluster, written by the node itself at start and on
# every heartbeat; the counters are a snapshot taken at the last heartbeat.
nodes = sa.Table(
    'nodes', metadata,
    sa.Column('name', sa.String(255), primary_key=True),
    sa.Column('url', sa.String(255), nullable=False),
    sa.Column('started_at', Timestamp, nullable=False),
    sa.Column('heartbeat_at', Timestamp, nullable=False),
    sa.Column('max_size', sa.BigInteger, nullable=False),
    sa.Column('pinned_max_size', sa.BigInteger, nullable=False),
    sa.Column('queued_jobs', sa.Integer, nullable=False),
    sa.Column('failed_jobs', sa.Integer, nullable=False),
    sa.Column('running', sa.Text, nullable=False),
)

# The images each node holds in its cache, kept by the node as it commits
# and evicts, and reconciled with its disk on every heartbeat.
node_images = sa.Table(
    'node_images', metadata,
    sa.Column('node_name', sa.String(255), sa.ForeignKey('nodes.name', ondelete='CASCADE'),
              primary_key=True),
    sa.Column('image_id', sa.String(36), primary_key=True),
    sa.Column('size', sa.BigInteger, nullable=False),
    sa.Column('cached_at', Timestamp, nullable=False),
    sa.Index('ix_node_images_image_id', 'image_id'),
)

# Pins: an image to keep cached on one node, or on every node when
# node_name is '*'. Deleting the image deletes its pins.
image_pins = sa.Table(
    'image_pins', metadata,
    sa.Column('image_id', sa.String(36), sa.ForeignKey('images.id', ondelete='CASCADE'),
              primary_key=True),
    sa.Column('node_name', sa.String(255), primary_key=True),
    sa.Column('created_at', Timestamp, nullable=False),
    sa.Column('created_by', sa.String(255)),
)
