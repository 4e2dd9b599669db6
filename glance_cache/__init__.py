"""glance-cache: a Glance-style image API whose node-local cache can be warmed at once."""
