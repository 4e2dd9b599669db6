"""Check strings shared by the per-resource rules.

The image's owner is offered to rules both as ``owner`` and as ``project_id``
(see policy.ImageTarget), so a deployer's rule may use either spelling.
"""

from oslo_policy import policy

ADMIN = 'role:admin'
PROJECT_MEMBER = 'role:member and project_id:%(project_id)s'
PROJECT_READER = 'role:reader and project_id:%(project_id)s'
PUBLIC_OR_COMMUNITY = "'public':%(visibility)s or 'community':%(visibility)s"

ADMIN_OR_PROJECT_MEMBER = 'rule:admin_required or rule:project_member'
ADMIN_OR_PROJECT_READER = 'rule:admin_required or rule:project_reader'

rules = [
    policy.RuleDefault('admin_required', ADMIN,
                       description='Callers with the admin role.'),
    policy.RuleDefault('project_member', PROJECT_MEMBER,
                       description='Members of the project that owns the target.'),
    policy.RuleDefault('project_reader', PROJECT_READER,
                       description='Readers of the project that owns the target.'),
    policy.RuleDefault('public_or_community', PUBLIC_OR_COMMUNITY,
                       description='Targets that every authenticated caller may see.'),
]


def list_rules():
    return rules
