"""Policy enforcement with oslo.policy, and the image as a policy target."""

import inspect
import time
import types
import weakref
from collections.abc import Mapping

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from glance_cache import errors, policies

try:
    from oslo_policy import _checks  # private: see _remember_check_argspecs
except ImportError:
    _checks = None


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


class _RememberedArgspecs:
    """``inspect`` as oslo.policy's rule evaluation sees it, argument specs remembered.

    oslo.policy asks ``inspect.getfullargspec`` for the arguments of a
    check's ``__call__`` every time it evaluates the check (to tell the
    checks that take the rule's name from older ones). That builds a full
    signature each time, five times per PUT /v2/cache: the largest single
    cost in a profile of the request. The arguments of a method are fixed
    when its class is made, so each method's spec is computed once here, the
    same spec ``inspect`` gives; anything that is not a method is passed
    through, and so is every other use of the module.
    """

    def __init__(self, real):
        self._real = real
        self._specs = weakref.WeakKeyDictionary()   # function -> its FullArgSpec

    def getfullargspec(self, func):
        # A bound method's spec is its function's, ``self`` included.
        function = getattr(func, '__func__', None)
        if not isinstance(function, types.FunctionType):
            return self._real.getfullargspec(func)
        spec = self._specs.get(function)
        if spec is None:
            spec = self._specs[function] = self._real.getfullargspec(func)
        return spec

    def __getattr__(self, name):
        return getattr(self._real, name)


def _remember_check_argspecs():
    """Let oslo.policy's checks compute their argument specs once (idempotent).

    Only where its rule evaluation still uses the ``inspect`` module as
    this was written against; a release that moved or changed that is left
    alone, and checks as it does.
    """
    if _checks is not None and getattr(_checks, 'inspect', None) is inspect:
        _checks.inspect = _RememberedArgspecs(inspect)


# Seconds between two looks for a changed policy file.
RELOAD_INTERVAL = 1.0


class _ThrottledEnforcer(oslo_policy.Enforcer):
    """oslo.policy's Enforcer, looking for changed policy files at most every ``interval``.

    oslo.policy looks on every check (a search of the configuration
    directories and a stat of each file: a third of a millisecond, twice per
    cache request); an operator's edit is still in force within a second.
    """

    def __init__(self, conf, interval, clock):
        super().__init__(conf)
        self._interval = interval
        self._clock = clock
        self._next_look = None

    def load_rules(self, force_reload=False):
        now = self._clock()
        if force_reload or self._next_look is None or now >= self._next_look:
            super().load_rules(force_reload)
            self._next_look = now + self._interval


class Enforcer:
    """The service's policy enforcer: rule defaults registered, errors mapped."""

    def __init__(self, conf, reload_interval=RELOAD_INTERVAL, clock=time.monotonic):
        _remember_check_argspecs()
        self._enforcer = _ThrottledEnforcer(conf, reload_interval, clock)
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
