"""Policy rule defaults, one module per resource; ``list_rules`` gathers them all."""

import itertools

from glance_cache.policies import base, cache, images


def list_rules():
    """Every rule default of glance-cache (entry point oslo.policy.policies)."""
    return list(itertools.chain(base.list_rules(), images.list_rules(), cache.list_rules()))
