"""Sphinx configuration of the glance-cache documentation.

``make docs`` (and ``tox -e docs``) build it with warnings as errors. The
configuration and policy references are generated from the code by
oslo.config's and oslo.policy's Sphinx extensions, through the entry points
the installed package declares (namespace ``glance_cache``). Nothing here
reaches the network: no intersphinx.
"""

import importlib.metadata
import warnings

# Listing the options loads glance_store, which imports eventlet, which warns
# on import that it is deprecated: the node itself does not depend on it.
warnings.filterwarnings('ignore', message=r'\s*Eventlet is deprecated')

project = 'glance-cache'
copyright = '2026, the glance-cache authors'

try:
    release = version = importlib.metadata.version('glance-cache')
except importlib.metadata.PackageNotFoundError:
    release = version = ''

extensions = [
    'oslo_config.sphinxext',
    'oslo_policy.sphinxext',
]

master_doc = 'index'
exclude_patterns = []
pygments_style = 'sphinx'

html_theme = 'alabaster'
html_title = 'glance-cache %s' % version
