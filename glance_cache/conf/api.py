"""Options of the [api] group: authentication and request limits."""

from oslo_config import cfg

from glance_cache.conf import groups

api_group = cfg.OptGroup('api', title='API options')

api_opts = [
    cfg.StrOpt('auth_strategy', default='noauth', choices=[
        ('noauth', 'Trust X-User-Id, X-Project-Id and X-Roles headers (loopback and tests '
                   'only). Without X-Roles the token "admin" is an admin and any other '
                   'token a member of the project named by the token.'),
        ('keystone', 'Validate tokens with keystonemiddleware auth_token; configure it '
                     'in [keystone_authtoken].'),
    ], help='How requests are authenticated.'),
    cfg.IntOpt('image_size_cap', default=1099511627776, min=1,
               help='Largest image, in bytes, that may be uploaded (default 1 TiB).'),
    cfg.IntOpt('limit_param_default', default=25, min=1,
               help='Images per page of an image list when the request sets no limit.'),
    cfg.IntOpt('api_limit_max', default=1000, min=1,
               help='Most images one page of an image list may hold.'),
]


def register_opts(conf):
    groups.register(conf, api_group, api_opts)


def list_opts():
    return [(api_group, api_opts)]
