"""Sphinx configuration of the glance-cache API reference (os-api-ref).

``make docs`` builds it with warnings as errors. Nothing here reaches the
network: no intersphinx, and a theme that ships with Sphinx. os-api-ref's
method panels are meant to fold under Bootstrap's JavaScript; without it
every panel stays open, and _static/api-ref.css lays them out and hides the
fold buttons that would do nothing.
"""

import importlib.metadata

project = 'glance-cache API reference'
copyright = '2026, the glance-cache authors'

try:
    release = version = importlib.metadata.version('glance-cache')
except importlib.metadata.PackageNotFoundError:
    release = version = ''

extensions = ['os_api_ref']

master_doc = 'index'
# The .inc files are read through the include directives of index.rst.
exclude_patterns = ['samples']
pygments_style = 'sphinx'

html_theme = 'alabaster'
html_title = 'glance-cache API reference'
html_static_path = ['_static']
html_css_files = ['api-ref.css']
html_theme_options = {'page_width': '1100px', 'sidebar_width': '260px'}
html_sidebars = {'**': ['about.html', 'localtoc.html', 'searchbox.html']}
