"""HTTP handlers, one module per resource. Each handler takes a webob Request
and the path's arguments and returns a webob Response or raises an
errors.GlanceCacheError."""
