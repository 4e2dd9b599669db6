"""Several nodes: the node registry, what each node holds, and pins.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb')


def upgrade():
    op.create_table(
        'nodes',
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
    op.create_table(
        'node_images',
        sa.Column('node_name', sa.String(255),
                  sa.ForeignKey('nodes.name', ondelete='CASCADE'), primary_key=True),
        sa.Column('image_id', sa.String(36), primary_key=True),
        sa.Column('size', sa.BigInteger, nullable=False),
        sa.Column('cached_at', Timestamp, nullable=False),
    )
    op.create_index('ix_node_images_image_id', 'node_images', ['image_id'])
    op.create_table(
        'image_pins',
        sa.Column('image_id', sa.String(36),
                  sa.ForeignKey('images.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('node_name', sa.String(255), primary_key=True),
        sa.Column('created_at', Timestamp, nullable=False),
        sa.Column('created_by', sa.String(255)),
    )
