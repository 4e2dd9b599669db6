"""Image ids in their canonical form: 36 characters, lower-case hex and hyphens.

Ids name store keys, cache files and job records, so only this form is
accepted where a path is built from one. It is what ``str(uuid.UUID(x))``
gives, checked with a pattern instead: directory listings of thousands of
names are filtered with it, and parsing each name as a UUID cost more than
the listing itself.
"""

import re

_CANONICAL = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')


def is_canonical(value):
    """Whether ``value`` is a string holding a UUID in its canonical form."""
    return isinstance(value, str) and _CANONICAL.fullmatch(value) is not None
