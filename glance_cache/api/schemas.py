"""JSON schemas of an image and of an image list (GET /v2/schemas/image[s]).

python-glanceclient validates the images it receives against the image schema
and builds its CLI options from it, so every base attribute the API returns
is described here, nullable where the API may return null, and extra
properties are strings.
"""

from glance_cache.api import common

DISK_FORMATS = ('ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso',
                'ploop')
CONTAINER_FORMATS = ('ami', 'ari', 'aki', 'bare', 'ovf', 'ova', 'docker', 'compressed')
VISIBILITIES = ('public', 'private', 'shared', 'community')
STATUSES = ('queued', 'saving', 'active', 'killed', 'deleted', 'pending_delete',
            'deactivated', 'uploading', 'importing')


def _nullable(kind, **extra):
    return dict(type=[kind, 'null'], **extra)


def _read_only(schema, description):
    return dict(schema, readOnly=True, description=description)


IMAGE_PROPERTIES = {
    'id': {'type': 'string', 'description': 'Identifier of the image (a UUID).',
           'pattern': '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}'
                      '-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$'},
    'name': _nullable('string', maxLength=255, description='A name for people to read.'),
    'status': _read_only({'type': 'string', 'enum': list(STATUSES)},
                         'Where the image is in its life: queued (no data yet), saving '
                         '(upload running), active (data stored).'),
    'visibility': {'type': 'string', 'enum': list(VISIBILITIES),
                   'description': 'Who may see the image.'},
    'protected': {'type': 'boolean', 'description': 'A protected image cannot be deleted.'},
    'os_hidden': {'type': 'boolean',
                  'description': 'Hidden images are left out of image lists by default.'},
    'checksum': _read_only(_nullable('string', maxLength=32),
                           'MD5 of the image data, in hex.'),
    'os_hash_algo': _read_only(_nullable('string', maxLength=64),
                               'The hashlib algorithm of os_hash_value.'),
    'os_hash_value': _read_only(_nullable('string', maxLength=128),
                                'Digest of the image data with os_hash_algo, in hex.'),
    'owner': _nullable('string', maxLength=255,
                       description='The project that owns the image.'),
    'size': _read_only(_nullable('integer'), 'Size of the image data in bytes.'),
    'virtual_size': _read_only(_nullable('integer'), 'Virtual size of the disk, in bytes.'),
    'container_format': _nullable('string', enum=[*CONTAINER_FORMATS, None],
                                  description='Format of the container around the disk.'),
    'disk_format': _nullable('string', enum=[*DISK_FORMATS, None],
                             description='Format of the disk image.'),
    'created_at': _read_only({'type': 'string'}, 'When the image was created (UTC).'),
    'updated_at': _read_only({'type': 'string'}, 'When the image last changed (UTC).'),
    'tags': {'type': 'array', 'items': {'type': 'string', 'maxLength': 255},
             'description': 'Free-form labels.'},
    'min_ram': {'type': 'integer', 'minimum': 0,
                'description': 'Least RAM, in MiB, a server booted from it needs.'},
    'min_disk': {'type': 'integer', 'minimum': 0,
                 'description': 'Least disk, in GiB, a server booted from it needs.'},
    'self': _read_only({'type': 'string'}, 'Path of this image.'),
    'file': _read_only({'type': 'string'}, 'Path of the image data.'),
    'schema': _read_only({'type': 'string'}, 'Path of this schema.'),
}

IMAGE_SCHEMA = {
    'name': 'image',
    'properties': IMAGE_PROPERTIES,
    'additionalProperties': {'type': 'string'},
    'links': [
        {'rel': 'self', 'href': '{self}'},
        {'rel': 'enclosure', 'href': '{file}'},
        {'rel': 'describedby', 'href': '{schema}'},
    ],
}

IMAGES_SCHEMA = {
    'name': 'images',
    'properties': {
        'images': {'type': 'array', 'items': IMAGE_SCHEMA},
        'schema': {'type': 'string'},
        'first': {'type': 'string'},
        'next': {'type': 'string'},
    },
    'links': [
        {'rel': 'first', 'href': '{first}'},
        {'rel': 'next', 'href': '{next}'},
        {'rel': 'describedby', 'href': '{schema}'},
    ],
}


def image(req):
    """GET /v2/schemas/image."""
    return common.json_response(IMAGE_SCHEMA)


def images(req):
    """GET /v2/schemas/images."""
    return common.json_response(IMAGES_SCHEMA)
