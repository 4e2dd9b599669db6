"""Registering an option group in one ConfigOpts without sharing it with others."""

from oslo_config import cfg


def register(conf, group, opts):
    """Register ``opts`` in ``conf`` under a group like ``group``, ``conf``'s own.

    oslo.config keeps a shallow copy of a registered OptGroup: copies of one
    OptGroup object share its dict of options, overrides included. Were the
    module's group registered itself, every ConfigOpts of the process (the
    tests make one per node or cache) would see the overrides set in any of
    them.
    """
    conf.register_group(cfg.OptGroup(group.name, title=group.title, help=group.help))
    conf.register_opts(opts, group=group.name)
