"""Policy enforcement with oslo.policy, and the image as a policy target."""

from collections.abc import Mapping

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from glance_cache import errors, policies


class ImageTarget(Mapping):
    """An image as seen by policy rules.

    Every attribute of the image is a key (``owner``, ``visibility``,
    ``protected``, ``status``, ``name`` ...); ``project_id`` is the owner, so
    both ``project_id:%(owner)s`` and ``project_id:%(project_id)s`` work.
    """

    def __init__(self, image):
        self._image = dict(image)
        self._image.pop('properties', None)
        self._image.update(image.get('properties') or {})
        self._image['project_id'] = image.get('owner')

    def __getitem__(self, key):
        return self._image[key]

    def __iter__(self):
        return iter(self._image)

    def __len__(self):
        return len(self._image)


class Enforcer:
    """The service's policy enforcer: rule defaults registered, errors mapped."""

    def __init__(self, conf):
        self._enforcer = oslo_policy.Enforcer(conf)
        self._enforcer.register_defaults(policies.list_rules())

    def authorize(self, context, action, target):
        """Raise errors.Forbidden unless ``context`` may do ``action`` on ``target``."""
        if not self.check(context, action, target):
            raise errors.Forbidden('Policy does not allow %s' % action)

    def check(self, context, action, target):
        """Whether ``context`` may do ``action`` on ``target``."""
        try:
            return self._enforcer.enforce(action, target, context.to_policy_values(),
                                          do_raise=False)
        except oslo_policy.InvalidScope:
            return False


def get_enforcer():
    """An oslo.policy Enforcer with our defaults (for oslopolicy-* commands)."""
    conf = cfg.ConfigOpts()
    conf([], project='glance-cache')
    enforcer = oslo_policy.Enforcer(conf)
    enforcer.register_defaults(policies.list_rules())
    return enforcer
