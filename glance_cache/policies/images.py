"""Rules for the images resource and its data."""

from oslo_policy import policy

from glance_cache.policies import base

IMAGES = '/v2/images'
IMAGE = '/v2/images/{image_id}'
IMAGE_FILE = '/v2/images/{image_id}/file'

rules = [
    policy.DocumentedRuleDefault(
        name='get_image',
        check_str='%s or rule:public_or_community' % base.ADMIN_OR_PROJECT_READER,
        description='Show an image. Callers who may not see an image get 404, not 403.',
        operations=[{'path': IMAGE, 'method': 'GET'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='get_images',
        check_str='rule:admin_required or role:reader',
        description='List images. The list holds only the images the caller may see.',
        operations=[{'path': IMAGES, 'method': 'GET'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='add_image',
        check_str=base.ADMIN_OR_PROJECT_MEMBER,
        description='Create an image. The target is the new image: its owner is the '
                    'caller\'s project unless the request names another.',
        operations=[{'path': IMAGES, 'method': 'POST'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='modify_image',
        check_str=base.ADMIN_OR_PROJECT_MEMBER,
        description='Change an image\'s attributes, tags and properties.',
        operations=[{'path': IMAGE, 'method': 'PATCH'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='publicize_image',
        check_str='rule:admin_required',
        description='Make an image public (on create or by PATCH).',
        operations=[{'path': IMAGES, 'method': 'POST'},
                    {'path': IMAGE, 'method': 'PATCH'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='communitize_image',
        check_str=base.ADMIN_OR_PROJECT_MEMBER,
        description='Make an image community-visible (on create or by PATCH).',
        operations=[{'path': IMAGES, 'method': 'POST'},
                    {'path': IMAGE, 'method': 'PATCH'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='delete_image',
        check_str=base.ADMIN_OR_PROJECT_MEMBER,
        description='Delete an image and its data. Protected images refuse (403) '
                    'whatever this rule says.',
        operations=[{'path': IMAGE, 'method': 'DELETE'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='upload_image',
        check_str=base.ADMIN_OR_PROJECT_MEMBER,
        description='Upload an image\'s data.',
        operations=[{'path': IMAGE_FILE, 'method': 'PUT'}],
        scope_types=['project']),
    policy.DocumentedRuleDefault(
        name='download_image',
        check_str='%s or rule:public_or_community' % base.ADMIN_OR_PROJECT_MEMBER,
        description='Download an image\'s data.',
        operations=[{'path': IMAGE_FILE, 'method': 'GET'}],
        scope_types=['project']),
]


def list_rules():
    return rules
