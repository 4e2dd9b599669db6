"""Console scripts: glance-cache-api and glance-cache-manage."""
