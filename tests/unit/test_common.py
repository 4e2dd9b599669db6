"""Unit tests of ids, roles, the request context and error bodies."""

import json

import pytest

from glance_cache import context, errors
from glance_cache.api import common


@pytest.mark.parametrize('value', ['', 'abc', '../../etc/passwd', '/etc/passwd', 'a\x00b',
                                   '{12345678-1234-5678-1234-567812345678}',
                                   '12345678123456781234567812345678', None, 5])
def test_require_image_id_refuses_anything_but_a_canonical_uuid(value):
    with pytest.raises(errors.NotFound):
        common.require_image_id(value)


def test_require_image_id_accepts_and_lowercases():
    value = '12345678-ABCD-5678-1234-567812345678'
    assert common.require_image_id(value) == value.lower()


def test_expand_roles_follows_keystone_implications():
    assert context.expand_roles(['admin']) == ['admin', 'member', 'reader']
    assert context.expand_roles(['member', 'reader']) == ['member', 'reader']
    assert context.expand_roles(['custom']) == ['custom']


def test_context_logging_values_are_made_once_and_follow_changes(monkeypatch):
    from oslo_context import context as oslo_context
    made = []
    real = oslo_context.RequestContext.get_logging_values
    monkeypatch.setattr(oslo_context.RequestContext, 'get_logging_values',
                        lambda self: made.append(1) or real(self))
    ctx = context.RequestContext(user_id='u', project_id='p', roles=['admin'],
                                 auth_token='secret', request_id='req-1')
    first = ctx.get_logging_values()
    assert (first['user'], first['project_id'], first['auth_token']) == ('u', 'p', '***')
    first['user'] = 'changed by a caller'
    assert ctx.get_logging_values()['user'] == 'u'
    assert len(made) == 1
    ctx.user_id = 'v'
    assert ctx.get_logging_values()['user'] == 'v'
    ctx.request_id = 'req-2'
    assert ctx.get_logging_values()['request_id'] == 'req-2'
    assert len(made) == 3
    # What oslo.log puts on each line of a request served with this context.
    assert ctx.get_logging_values() == real(ctx)


def test_error_body_shape_is_what_glanceclient_reads():
    resp = errors.Conflict('busy', headers={'Retry-After': '1'}).to_response()
    assert resp.status_int == 409
    assert resp.content_type == 'application/json'
    assert resp.headers['Retry-After'] == '1'
    body = json.loads(resp.body)
    assert body == {'error': {'code': 409, 'title': 'Conflict', 'message': 'busy'}}
    assert all(isinstance(v, dict) for v in body.values())
