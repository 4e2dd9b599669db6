"""glance_cache.policy: the Enforcer with the secure-RBAC defaults, and ImageTarget.

Every rule of glance_cache/policies/images.py is checked for every kind of
caller against images of every visibility, with a real oslo.config ConfigOpts
and a real oslo.policy enforcer behind glance_cache.policy.Enforcer.
"""

import collections.abc
import os

import pytest
from oslo_config import cfg

from glance_cache import conf as gc_conf
from glance_cache import context, errors, policies, policy
from glance_cache.policies import images as image_policies

OWNER = 'project-owner'
OTHER = 'project-other'
VISIBILITIES = ('public', 'community', 'shared', 'private')


def make_conf(argv=()):
    conf = cfg.ConfigOpts()
    gc_conf.register_opts(conf)
    conf(list(argv), project='glance-cache', default_config_files=[])
    return conf


@pytest.fixture(scope='module')
def enforcer():
    return policy.Enforcer(make_conf())


def caller(project, *roles):
    """A request context as NoAuthMiddleware / keystone would build it."""
    return context.RequestContext(user_id='user-of-%s' % project, project_id=project,
                                  roles=context.expand_roles(roles))


# The kinds of caller, with the roles Keystone (or noauth) gives them.
CALLERS = {
    'admin': caller('project-admin', 'admin'),
    'owner_member': caller(OWNER, 'member'),
    'owner_reader': caller(OWNER, 'reader'),
    'other_member': caller(OTHER, 'member'),
    'other_reader': caller(OTHER, 'reader'),
    'owner_no_role': caller(OWNER),
}


def image(visibility='private', owner=OWNER, **properties):
    return {'id': '5a0b2c4e-8a39-4c4b-9d0e-0c4f1b7e2a11', 'name': 'img', 'status': 'active',
            'visibility': visibility, 'protected': False, 'os_hidden': False, 'owner': owner,
            'disk_format': 'raw', 'container_format': 'bare', 'size': 3,
            'properties': properties, 'tags': []}


def _always(*callers):
    return {name: set(VISIBILITIES) if name in callers else set() for name in CALLERS}


_EVERYONE_READS_PUBLIC = {'public', 'community'}

# rule -> caller -> the visibilities of OWNER's image on which the rule allows the caller.
EXPECTED = {
    'get_image': {
        'admin': set(VISIBILITIES),
        'owner_member': set(VISIBILITIES),
        'owner_reader': set(VISIBILITIES),
        'other_member': _EVERYONE_READS_PUBLIC,
        'other_reader': _EVERYONE_READS_PUBLIC,
        'owner_no_role': _EVERYONE_READS_PUBLIC,
    },
    'download_image': {
        'admin': set(VISIBILITIES),
        'owner_member': set(VISIBILITIES),
        # Like Glance: reading data of a private image takes the member role.
        'owner_reader': _EVERYONE_READS_PUBLIC,
        'other_member': _EVERYONE_READS_PUBLIC,
        'other_reader': _EVERYONE_READS_PUBLIC,
        'owner_no_role': _EVERYONE_READS_PUBLIC,
    },
    'add_image': _always('admin', 'owner_member'),
    'modify_image': _always('admin', 'owner_member'),
    'delete_image': _always('admin', 'owner_member'),
    'upload_image': _always('admin', 'owner_member'),
    'communitize_image': _always('admin', 'owner_member'),
    'publicize_image': _always('admin'),
}

IMAGE_CASES = [(rule, who, vis) for rule in sorted(EXPECTED) for who in CALLERS
               for vis in VISIBILITIES]


def test_every_image_rule_has_expectations():
    names = {rule.name for rule in image_policies.list_rules()}
    assert names == set(EXPECTED) | {'get_images'}


def test_all_rules_are_registered_with_the_enforcer(enforcer):
    registered = set(enforcer._enforcer.registered_rules)
    assert {r.name for r in policies.list_rules()} <= registered
    assert {'admin_required', 'project_member', 'project_reader',
            'public_or_community'} <= registered


@pytest.mark.parametrize('rule,who,visibility', IMAGE_CASES)
def test_image_rule_defaults(enforcer, rule, who, visibility):
    target = policy.ImageTarget(image(visibility))
    allowed = visibility in EXPECTED[rule][who]
    assert enforcer.check(CALLERS[who], rule, target) is allowed
    if allowed:
        enforcer.authorize(CALLERS[who], rule, target)
    else:
        with pytest.raises(errors.Forbidden) as info:
            enforcer.authorize(CALLERS[who], rule, target)
        assert info.value.code == 403
        assert rule in info.value.message


@pytest.mark.parametrize('who,allowed', [
    ('admin', True), ('owner_member', True), ('owner_reader', True),
    ('other_member', True), ('other_reader', True), ('owner_no_role', False),
])
def test_get_images_needs_reader_role(enforcer, who, allowed):
    ctx = CALLERS[who]
    assert enforcer.check(ctx, 'get_images', {'project_id': ctx.project_id}) is allowed


def test_add_image_for_another_project_is_admin_only(enforcer):
    target = policy.ImageTarget(image('private', owner=OTHER))
    assert not enforcer.check(CALLERS['owner_member'], 'add_image', target)
    assert enforcer.check(CALLERS['other_member'], 'add_image', target)
    assert enforcer.check(CALLERS['admin'], 'add_image', target)


def test_admin_of_any_project_is_admin_everywhere(enforcer):
    ctx = caller('some-unrelated-project', 'admin')
    target = policy.ImageTarget(image('private', owner=OTHER))
    for rule in EXPECTED:
        assert enforcer.check(ctx, rule, target), rule


@pytest.mark.filterwarnings('ignore:Policy enforcement is depending on the value of system')
def test_system_scoped_token_is_refused_by_project_scoped_rules(enforcer):
    ctx = context.RequestContext(user_id='u', roles=['admin', 'member', 'reader'],
                                 system_scope='all')
    target = policy.ImageTarget(image('public'))
    assert not enforcer.check(ctx, 'get_image', target)
    with pytest.raises(errors.Forbidden):
        enforcer.authorize(ctx, 'delete_image', target)


def test_image_without_owner_belongs_to_no_project(enforcer):
    target = policy.ImageTarget(image('private', owner=None))
    assert not enforcer.check(CALLERS['owner_member'], 'get_image', target)
    assert not enforcer.check(CALLERS['owner_member'], 'modify_image', target)
    assert enforcer.check(CALLERS['admin'], 'modify_image', target)


def test_unknown_action_fails_closed(enforcer):
    target = policy.ImageTarget(image('public'))
    assert not enforcer.check(CALLERS['admin'], 'no_such_rule', target)
    with pytest.raises(errors.Forbidden):
        enforcer.authorize(CALLERS['admin'], 'no_such_rule', target)


# -- ImageTarget ----------------------------------------------------------------


def test_image_target_is_a_read_only_mapping():
    target = policy.ImageTarget(image('shared'))
    assert isinstance(target, collections.abc.Mapping)
    assert not isinstance(target, collections.abc.MutableMapping)
    assert len(target) == len(list(target)) == len(dict(target))
    assert set(target) == set(target.keys())
    assert target.get('missing') is None
    with pytest.raises(KeyError):
        target['missing']


def test_image_target_exposes_owner_as_project_id():
    target = policy.ImageTarget(image('private', owner='p-42'))
    assert target['owner'] == 'p-42'
    assert target['project_id'] == 'p-42'
    assert target['visibility'] == 'private'
    assert target['status'] == 'active'


def test_image_target_flattens_properties():
    raw = image('public', hw_disk_bus='scsi', os_distro='cirros')
    target = policy.ImageTarget(raw)
    assert 'properties' not in target
    assert target['hw_disk_bus'] == 'scsi'
    assert target['os_distro'] == 'cirros'
    assert raw['properties'] == {'hw_disk_bus': 'scsi', 'os_distro': 'cirros'}, \
        'the image given must not be changed'


def test_image_target_property_cannot_spoof_project_id():
    target = policy.ImageTarget(image('private', owner=OWNER, project_id=OTHER))
    assert target['project_id'] == OWNER
    enforcer = policy.Enforcer(make_conf())
    assert not enforcer.check(CALLERS['other_member'], 'modify_image', target)


def test_image_target_without_properties():
    raw = image('private')
    del raw['properties']
    target = policy.ImageTarget(raw)
    assert target['project_id'] == OWNER
    assert 'properties' not in target


# -- operator overrides -----------------------------------------------------------


def write_policy(path, rules):
    lines = ''.join('"%s": "%s"\n' % item for item in rules.items())
    path.write_text(lines)
    return str(path)


def conf_with_policy_file(tmp_path, rules):
    policy_path = write_policy(tmp_path / 'policy.yaml', rules)
    config = tmp_path / 'glance-cache.conf'
    config.write_text('[oslo_policy]\npolicy_file = %s\n' % policy_path)
    return make_conf(['--config-file', str(config)]), policy_path


def test_policy_file_overrides_defaults(tmp_path):
    conf, _ = conf_with_policy_file(tmp_path, {
        'delete_image': 'role:admin',
        'publicize_image': 'rule:admin_required or rule:project_member',
        'get_image': "project_id:%(owner)s or 'public':%(visibility)s",
    })
    enforcer = policy.Enforcer(conf)
    member = CALLERS['owner_member']
    own = policy.ImageTarget(image('private'))
    assert not enforcer.check(member, 'delete_image', own)
    assert enforcer.check(CALLERS['admin'], 'delete_image', own)
    assert enforcer.check(member, 'publicize_image', own)
    assert not enforcer.check(CALLERS['other_member'], 'publicize_image', own)
    # %(owner)s works as well as %(project_id)s in a deployer's rule.
    assert enforcer.check(CALLERS['owner_no_role'], 'get_image', own)
    assert not enforcer.check(CALLERS['other_member'], 'get_image',
                              policy.ImageTarget(image('community')))
    # Rules the file does not name keep their defaults.
    assert enforcer.check(member, 'modify_image', own)
    assert not enforcer.check(CALLERS['owner_reader'], 'modify_image', own)


def test_policy_file_rule_can_use_image_properties(tmp_path):
    conf, _ = conf_with_policy_file(tmp_path, {
        'download_image': "rule:admin_required or "
                          "(rule:project_member and 'yes':%(allow_download)s)",
    })
    enforcer = policy.Enforcer(conf)
    member = CALLERS['owner_member']
    assert enforcer.check(member, 'download_image',
                          policy.ImageTarget(image('private', allow_download='yes')))
    assert not enforcer.check(member, 'download_image',
                              policy.ImageTarget(image('private', allow_download='no')))
    assert not enforcer.check(member, 'download_image', policy.ImageTarget(image('private')))


def test_policy_file_changes_are_picked_up_without_restart(tmp_path):
    conf, policy_path = conf_with_policy_file(tmp_path, {'get_images': 'role:admin'})
    now = [1000.0]
    enforcer = policy.Enforcer(conf, clock=lambda: now[0])
    member = CALLERS['owner_member']
    target = {'project_id': member.project_id}
    assert not enforcer.check(member, 'get_images', target)
    write_policy(tmp_path / 'policy.yaml', {'get_images': 'role:reader'})
    # Make the change visible whatever the file system's time stamp granularity.
    stat = os.stat(policy_path)
    os.utime(policy_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    # The file is looked at again once RELOAD_INTERVAL has passed, not on every check.
    now[0] += policy.RELOAD_INTERVAL / 2
    assert not enforcer.check(member, 'get_images', target)
    now[0] += policy.RELOAD_INTERVAL
    assert enforcer.check(member, 'get_images', target)


def test_json_policy_file_is_read(tmp_path):
    policy_path = tmp_path / 'policy.json'
    policy_path.write_text('{"upload_image": "!"}')
    config = tmp_path / 'glance-cache.conf'
    config.write_text('[oslo_policy]\npolicy_file = %s\n' % policy_path)
    enforcer = policy.Enforcer(make_conf(['--config-file', str(config)]))
    target = policy.ImageTarget(image('private'))
    assert not enforcer.check(CALLERS['admin'], 'upload_image', target)
    assert enforcer.check(CALLERS['admin'], 'modify_image', target)


def test_get_enforcer_knows_every_rule():
    enforcer = policy.get_enforcer()
    assert {r.name for r in policies.list_rules()} <= set(enforcer.registered_rules)


CACHE_RULES = ('cache_image', 'cache_list', 'cache_delete', 'manage_image_cache', 'cache_pin',
               'cache_forward')


@pytest.mark.parametrize('rule', CACHE_RULES)
@pytest.mark.parametrize('who', sorted(CALLERS))
def test_cache_rules_are_admin_only_by_default(enforcer, rule, who):
    """Passing requests on to other nodes (cache_forward) included: it shows the cluster."""
    target = policy.ImageTarget(image('public', owner=CALLERS[who].project_id))
    assert enforcer.check(CALLERS[who], rule, target) is (who == 'admin')


def test_every_cache_rule_is_in_that_list():
    from glance_cache.policies import cache as cache_policies
    assert {r.name for r in cache_policies.list_rules()} == set(CACHE_RULES)


class _CountingInspect:
    """The ``inspect`` behind policy's remembered specs, counting getfullargspec."""

    def __init__(self, real):
        self.real = real
        self.calls = 0

    def getfullargspec(self, func):
        self.calls += 1
        return self.real.getfullargspec(func)


def test_check_argspecs_are_computed_once_per_method(enforcer, monkeypatch):
    from oslo_policy import _checks
    memo = _checks.inspect
    assert isinstance(memo, policy._RememberedArgspecs)
    counting = _CountingInspect(memo._real)
    monkeypatch.setattr(memo, '_real', counting)
    monkeypatch.setattr(memo, '_specs', type(memo._specs)())
    target = policy.ImageTarget(image('public', owner=OTHER))
    # get_image for a reader of another project walks an or of rules down to
    # role, generic and project checks: every kind of node evaluated.
    for _ in range(50):
        assert enforcer.check(CALLERS['other_reader'], 'get_image', target)
        assert not enforcer.check(CALLERS['other_reader'], 'cache_image', target)
    # Once per kind of check evaluated, not once per evaluation (some 500).
    assert 0 < counting.calls <= 8


def test_remembered_specs_are_inspect_s_own():
    import inspect

    from oslo_policy import _checks

    memo = policy._RememberedArgspecs(inspect)
    for cls in (_checks.RoleCheck, _checks.OrCheck, _checks.RuleCheck, _checks.GenericCheck):
        method = cls.__call__.__get__(object.__new__(cls))
        assert memo.getfullargspec(method) == inspect.getfullargspec(method)
        assert memo.getfullargspec(method) is memo.getfullargspec(method)
    # What is not a method is passed through, and so is the rest of the module.
    assert memo.getfullargspec(image) == inspect.getfullargspec(image)
    assert memo.signature is inspect.signature


def test_checks_with_the_older_call_signature_still_work(tmp_path):
    """A deployer's check class without current_rule is called without it."""
    from oslo_policy import _checks

    calls = []

    class ThreeArguments(_checks.Check):
        def __call__(self, target, creds, enforcer):
            calls.append(self.match)
            return self.match == 'yes'

    class FourArguments(_checks.Check):
        def __call__(self, target, creds, enforcer, current_rule=None):
            calls.append(current_rule)
            return self.match == 'yes'

    _checks.register('three', ThreeArguments)
    _checks.register('four', FourArguments)
    try:
        conf, _ = conf_with_policy_file(tmp_path, {
            'get_images': 'three:yes and four:yes',
            'modify_image': 'three:no or four:no',
        })
        enforcer = policy.Enforcer(conf)
        for _ in range(3):
            assert enforcer.check(CALLERS['admin'], 'get_images', {})
            assert not enforcer.check(CALLERS['admin'], 'modify_image', {})
    finally:
        _checks.registered_checks.pop('three', None)
        _checks.registered_checks.pop('four', None)
    assert calls == ['yes', 'get_images', 'no', 'modify_image'] * 3
