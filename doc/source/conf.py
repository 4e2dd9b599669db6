"""Sphinx configuration of the glance-cache documentation (tox -e docs)."""

project = 'glance-cache'
copyright = '2026, the glance-cache authors'
extensions = []
master_doc = 'index'
exclude_patterns = []
html_theme = 'alabaster'
