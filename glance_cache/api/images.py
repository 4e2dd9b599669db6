"""Image records: create, list, show, update (JSON patch) and delete."""

import urllib.parse
import uuid

from glance_cache import errors
from glance_cache.api import common, schemas
from glance_cache.db.api import SORT_KEYS

BASE_ATTRIBUTES = ('id', 'name', 'status', 'visibility', 'protected', 'os_hidden', 'owner',
                   'disk_format', 'container_format', 'size', 'virtual_size', 'checksum',
                   'os_hash_algo', 'os_hash_value', 'min_disk', 'min_ram')

# Attributes no client may set, and names reserved for the service.
READ_ONLY = frozenset(('status', 'size', 'virtual_size', 'checksum', 'os_hash_algo',
                       'os_hash_value', 'created_at', 'updated_at', 'self', 'file', 'schema',
                       'direct_url', 'locations', 'location', 'deleted', 'deleted_at'))

PATCH_CONTENT_TYPES = ('application/openstack-images-v2.1-json-patch',
                       'application/openstack-images-v2.0-json-patch')


def _string(max_length):
    def check(name, value):
        if value is not None and not isinstance(value, str):
            raise errors.BadRequest('%s must be a string or null' % name)
        if value is not None and len(value) > max_length:
            raise errors.BadRequest('%s is longer than %d characters' % (name, max_length))
        return value
    return check


def _enum(choices, nullable=True):
    def check(name, value):
        if value is None and nullable:
            return value
        if value not in choices:
            raise errors.BadRequest('%s must be one of %s, not %r'
                                    % (name, ', '.join(choices), value))
        return value
    return check


def _boolean(name, value):
    if not isinstance(value, bool):
        raise errors.BadRequest('%s must be true or false' % name)
    return value


def _non_negative_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.BadRequest('%s must be a whole number of at least 0' % name)
    if value > 2**31 - 1:
        raise errors.BadRequest('%s is too large' % name)
    return value


def _tags(name, value):
    if not isinstance(value, list):
        raise errors.BadRequest('tags must be a list of strings')
    for tag in value:
        if not isinstance(tag, str) or not tag or len(tag) > 255:
            raise errors.BadRequest('each tag must be a string of 1 to 255 characters')
    return sorted(set(value))


# Writable base attributes and the check each value must pass.
WRITABLE = {
    'name': _string(255),
    'visibility': _enum(schemas.VISIBILITIES, nullable=False),
    'protected': _boolean,
    'os_hidden': _boolean,
    'owner': _string(255),
    'disk_format': _enum(schemas.DISK_FORMATS),
    'container_format': _enum(schemas.CONTAINER_FORMATS),
    'min_disk': _non_negative_int,
    'min_ram': _non_negative_int,
    'tags': _tags,
}


def _check_property(name, value):
    if not name or len(name) > 255:
        raise errors.BadRequest('Property names must be 1 to 255 characters long')
    if not isinstance(value, str):
        raise errors.BadRequest('Property %s must be a string' % name)
    if len(value) > 65535:
        raise errors.BadRequest('Property %s is longer than 65535 characters' % name)
    return value


def view(image):
    """An image as the API shows it."""
    body = {key: image[key] for key in BASE_ATTRIBUTES}
    body.update(image['properties'])
    body['tags'] = list(image['tags'])
    body['created_at'] = common.isotime(image['created_at'])
    body['updated_at'] = common.isotime(image['updated_at'])
    body['self'] = '/v2/images/%s' % image['id']
    body['file'] = '/v2/images/%s/file' % image['id']
    body['schema'] = '/v2/schemas/image'
    return body


def get_visible(req, image_id):
    """The image, if the caller may see it; 404 alike for missing and invisible."""
    image_id = common.require_image_id(image_id)
    svc = common.services(req)
    image = svc.db.image_get(image_id)
    if not svc.policy.check(common.request_context(req), 'get_image', svc.target(image)):
        raise errors.ImageNotFound(image_id)
    return image


def _authorize_visibility(req, target, visibility):
    svc = common.services(req)
    ctx = common.request_context(req)
    if visibility == 'public':
        svc.policy.authorize(ctx, 'publicize_image', target)
    elif visibility == 'community':
        svc.policy.authorize(ctx, 'communitize_image', target)


def create(req):
    """POST /v2/images: 201 with the new, queued image."""
    body = common.read_json(req)
    if not isinstance(body, dict):
        raise errors.BadRequest('The request body must be a JSON object')
    ctx = common.request_context(req)
    svc = common.services(req)
    values = {'name': None, 'visibility': 'shared', 'protected': False, 'os_hidden': False,
              'owner': ctx.project_id, 'disk_format': None, 'container_format': None,
              'min_disk': 0, 'min_ram': 0}
    tags, properties = [], {}
    for name, value in body.items():
        if name in READ_ONLY:
            raise errors.Forbidden('Attribute %s is read-only' % name)
        if name == 'id':
            values['id'] = _new_image_id(value)
        elif name == 'tags':
            tags = _tags(name, value)
        elif name in WRITABLE:
            values[name] = WRITABLE[name](name, value)
        else:
            properties[name] = _check_property(name, value)
    values.setdefault('id', str(uuid.uuid4()))
    values.update(status='queued', size=None, virtual_size=None, checksum=None,
                  os_hash_algo=None, os_hash_value=None, location=None)
    target = svc.target(dict(values, properties=properties))
    svc.policy.authorize(ctx, 'add_image', target)
    _authorize_visibility(req, target, values['visibility'])
    image = svc.db.image_create(values, properties, tags)
    return common.json_response(view(image), status=201,
                                headers={'Location': '/v2/images/%s' % image['id']})


def _new_image_id(value):
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        raise errors.BadRequest('id must be a UUID') from None


def _bool_param(name, value):
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ('true', '1', 'yes'):
        return True
    if lowered in ('false', '0', 'no'):
        return False
    raise errors.BadRequest('%s must be true or false' % name)


def index(req):
    """GET /v2/images: one page of the images the caller may see."""
    svc = common.services(req)
    ctx = common.request_context(req)
    svc.policy.authorize(ctx, 'get_images', {'project_id': ctx.project_id})
    params = req.GET
    api_conf = svc.conf.api
    try:
        limit = int(params.get('limit', api_conf.limit_param_default))
    except ValueError:
        raise errors.BadRequest('limit must be a whole number') from None
    if limit < 0:
        raise errors.BadRequest('limit must not be negative')
    limit = min(limit, api_conf.api_limit_max)
    sort_key = params.get('sort_key', 'created_at')
    sort_dir = params.get('sort_dir', 'desc')
    if sort_key not in SORT_KEYS:
        raise errors.BadRequest('sort_key must be one of %s' % ', '.join(SORT_KEYS))
    if sort_dir not in ('asc', 'desc'):
        raise errors.BadRequest('sort_dir must be asc or desc')
    filters = {'name': params.get('name'), 'owner': params.get('owner'),
               'status': params.get('status'), 'tags': params.getall('tag'),
               'os_hidden': _bool_param('os_hidden', params.get('os_hidden', 'false'))}
    visibility = params.get('visibility')
    if visibility is not None:
        filters['visibility'] = _enum((*schemas.VISIBILITIES, 'all'), nullable=False)(
            'visibility', visibility)
    if filters['status'] is not None:
        _enum(schemas.STATUSES, nullable=False)('status', filters['status'])
    marker = params.get('marker')
    if marker is not None:
        try:
            marker = common.require_image_id(marker)
        except errors.NotFound:
            raise errors.BadRequest('marker must be an image ID') from None
    images, has_more = svc.db.image_list(
        project_id=ctx.project_id, is_admin=ctx.is_admin_role, filters=filters,
        marker=marker, limit=limit, sort_key=sort_key, sort_dir=sort_dir)
    body = {'images': [view(img) for img in images], 'first': '/v2/images',
            'schema': '/v2/schemas/images'}
    if has_more and images:
        query = [(k, v) for k, v in params.items() if k != 'marker']
        query.append(('marker', images[-1]['id']))
        body['next'] = '/v2/images?' + urllib.parse.urlencode(query)
    return common.json_response(body)


def show(req, image_id):
    """GET /v2/images/{image_id}."""
    return common.json_response(view(get_visible(req, image_id)))


def _patch_path(op):
    path = op.get('path')
    if not isinstance(path, str) or not path.startswith('/') or path.count('/') != 1:
        raise errors.BadRequest('Each patch operation needs a path like "/name", not %r'
                                % (path,))
    return path[1:].replace('~1', '/').replace('~0', '~')


def update(req, image_id):
    """PATCH /v2/images/{image_id}: apply a JSON patch (add, replace, remove)."""
    image = get_visible(req, image_id)
    svc = common.services(req)
    ctx = common.request_context(req)
    target = svc.target(image)
    svc.policy.authorize(ctx, 'modify_image', target)
    ops = common.read_json(req, PATCH_CONTENT_TYPES)
    if not isinstance(ops, list):
        raise errors.BadRequest('A JSON patch is a list of operations')
    values, tags = {}, None
    properties = dict(image['properties'])
    for op in ops:
        if not isinstance(op, dict):
            raise errors.BadRequest('Each patch operation must be a JSON object')
        action = op.get('op')
        name = _patch_path(op)
        if action not in ('add', 'replace', 'remove'):
            raise errors.BadRequest('Unsupported patch operation %r; use add, replace or '
                                    'remove' % (action,))
        if action != 'remove' and 'value' not in op:
            raise errors.BadRequest('Operation %s on %s needs a value' % (action, name))
        if name in READ_ONLY or name == 'id':
            raise errors.Forbidden('Attribute %s is read-only' % name)
        if name in WRITABLE:
            if action == 'remove':
                raise errors.Forbidden('Attribute %s cannot be removed' % name)
            if name == 'owner' and op['value'] != image['owner'] and not ctx.is_admin_role:
                raise errors.Forbidden('Only admins may change an image\'s owner')
            value = WRITABLE[name](name, op['value'])
            if name == 'tags':
                tags = value
            else:
                values[name] = value
        elif action == 'remove' or (action == 'replace' and name not in properties):
            if name not in properties:
                raise errors.Conflict('Property %s does not exist' % name)
            del properties[name]
        else:
            properties[name] = _check_property(name, op['value'])
    if values.get('visibility', image['visibility']) != image['visibility']:
        _authorize_visibility(req, target, values['visibility'])
    changed = {k: v for k, v in properties.items() if image['properties'].get(k) != v}
    removed = [k for k in image['properties'] if k not in properties]
    image = svc.db.image_update(image['id'], values, changed, removed, tags)
    return common.json_response(view(image))


def delete(req, image_id):
    """DELETE /v2/images/{image_id}: 204; the record goes first, then the data."""
    image = get_visible(req, image_id)
    svc = common.services(req)
    svc.policy.authorize(common.request_context(req), 'delete_image', svc.target(image))
    if image['protected']:
        raise errors.Forbidden('Image %s is protected and cannot be deleted' % image['id'])
    image = svc.db.image_destroy(image['id'])
    if svc.cache is not None:
        # The job record first, as DELETE /v2/cache/{id} does: a cancelled fill
        # leaves its record alone, so a record kept here would stay "caching".
        svc.jobs.remove(image['id'])
        svc.cache.delete(image['id'])
    if image['location']:
        svc.store.delete(image['location'])
    return common.empty_response()
