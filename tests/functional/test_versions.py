"""Version discovery and schemas, as python-glanceclient and openstacksdk read them."""

import jsonschema
import pytest


def test_versions_200_lists_current_and_v2_entries(node):
    resp = node.request('GET', '/versions', token=None)
    assert resp.status_code == 200
    assert resp.headers['Content-Type'].startswith('application/json')
    versions = resp.json()['versions']
    ids = [v['id'] for v in versions]
    assert 'v2.0' in ids
    assert [v['status'] for v in versions].count('CURRENT') == 1
    current = next(v for v in versions if v['status'] == 'CURRENT')
    assert ids[0] == current['id'], 'the newest version comes first'
    for v in versions:
        assert v['links'][0]['rel'] == 'self'
        assert v['links'][0]['href'] == node.url + '/v2/'


def test_root_is_300_with_same_document(node):
    root = node.request('GET', '/', token=None)
    assert root.status_code == 300
    assert root.json() == node.request('GET', '/versions', token=None).json()


def test_versions_need_no_token_but_images_do(node):
    resp = node.request('GET', '/v2/images', token=None)
    assert resp.status_code == 401
    assert resp.json()['error']['code'] == 401


def test_image_schema_accepts_what_the_api_returns(node):
    schema = node.request('GET', '/v2/schemas/image').json()
    image = node.create_image(tags=['a'], custom_prop='x')
    jsonschema.validate(image, schema)
    listed = node.request('GET', '/v2/schemas/images').json()
    assert listed['properties']['images']['items']['name'] == 'image'
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(dict(image, custom_prop=5), schema)


@pytest.mark.parametrize('path', ['/nothing', '/v2/images/x/y/z',
                                  '/v2/schemas/metadefs/namespace'])
def test_unknown_paths_are_json_404(node, path):
    resp = node.request('GET', path)
    assert resp.status_code == 404
    assert resp.json()['error']['title'] == 'Not Found'


def test_wrong_method_is_405_with_allow(node):
    resp = node.request('POST', '/versions')
    assert resp.status_code == 405
    assert resp.headers['Allow'] == 'GET'
    assert resp.json()['error']['code'] == 405
    resp = node.request('PUT', '/v2/images')
    assert resp.status_code == 405
    assert set(resp.headers['Allow'].split(', ')) == {'GET', 'POST'}
