"""What every command of glance-cache-manage that talks to a node shares.

The client built from ``--url`` and ``--os-auth-token`` (or the environment),
the runner that turns errors into messages and exit statuses, and the table
and time formats of their output.

Exit statuses: 0 on success, 1 when the node (or any target node) refused or
failed a request or an image was not cached, 2 for a usage error (such as no
node URL) and 130 when interrupted.
"""

import functools
import os
import sys
import time

from glance_cache.cmd import progress
from glance_cache.cmd.cache_client import CacheClient, CacheClientError

PROG = 'glance-cache-manage'
URL_ENV = ('GLANCE_CACHE_URL', 'OS_IMAGE_URL')
TOKEN_ENV = 'OS_AUTH_TOKEN'
POLL_INTERVAL = 0.2
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
JOB_GONE = 'its caching job is gone (deleted or cleared meanwhile?)'


class UsageError(Exception):
    """The command line cannot work as given."""


def command(handler):
    # Handlers take (client, args); the runner builds the client from the
    # configuration and turns errors into messages and exit statuses.
    return functools.partial(run, handler)


def make_client(conf, environ=None):
    """A CacheClient for ``--url`` and ``--os-auth-token``, falling back to the environment."""
    environ = os.environ if environ is None else environ
    url = conf.url or next((environ[n] for n in URL_ENV if environ.get(n)), None)
    if not url:
        raise UsageError('no node URL: pass --url or set %s' % ' or '.join(URL_ENV))
    token = conf.os_auth_token or environ.get(TOKEN_ENV)
    try:
        return CacheClient(url, token)
    except CacheClientError as exc:
        raise UsageError(exc.message) from None


def run(func, conf):
    """Run a cache command; its exit status, with errors reported on stderr."""
    try:
        return func(make_client(conf), conf.command)
    except UsageError as exc:
        error(str(exc))
        return EXIT_USAGE
    except CacheClientError as exc:
        error(exc.message)
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write('\n')
        error('interrupted; the node goes on with what it was asked to do')
        return EXIT_INTERRUPTED


def error(message):
    sys.stderr.write('%s: %s\n' % (PROG, message))
    sys.stderr.flush()


def unique(items):
    return list(dict.fromkeys(items))


def format_table(headers, rows):
    """A boxed text table of ``rows`` (sequences of strings) under ``headers``."""
    rows = [[' '.join(str(cell).split()) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    rule = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'

    def line(cells):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + ' |'

    return '\n'.join([rule, line(headers), rule] + [line(r) for r in rows] + [rule])


def when(epoch):
    if not epoch:
        return '-'
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))


def job_progress(job):
    done, size = job.get('bytes_done') or 0, job.get('size')
    if not size:
        return progress.format_bytes(done)
    return '%d%% of %s' % (min(100 * done // size, 100), progress.format_bytes(size))
