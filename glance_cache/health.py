"""Checks behind GET /healthcheck (oslo.middleware's healthcheck app).

Two backends, enabled by default through ``[healthcheck] backends``:

``glance_cache_database``
    the metadata database answers a query;
``glance_cache_cache_dir``
    a file can be created, written, synced and removed in ``[cache] cache_dir``
    (skipped when the cache is disabled).

A failing check makes the answer 503 with its reason; oslo.middleware's own
backends (``disable_by_file`` ...) can be listed beside them.

Load balancers probe often and the endpoint needs no token, so the database
check runs at most once every RESULT_MAX_AGE seconds per process, one at a
time, and a database that does not answer within CHECK_TIMEOUT seconds is
reported unreachable without holding the probe any longer.
"""

import concurrent.futures
import os
import tempfile
import threading
import time

from oslo_middleware.healthcheck import pluginbase

from glance_cache.db import api as db_api

CHECK_TIMEOUT = 5.0
RESULT_MAX_AGE = 2.0


class DatabaseCheck(pluginbase.HealthcheckBaseExtension):
    """Available when the metadata database answers ``SELECT 1``."""

    def __init__(self, oslo_conf, conf):
        super().__init__(oslo_conf, conf)
        self._database = None
        self._lock = threading.Lock()
        self._runner = concurrent.futures.ThreadPoolExecutor(1, 'healthcheck-database')
        self._running = None
        self._result = None
        self._result_at = 0.0

    def healthcheck(self, server_port):
        with self._lock:
            if self._result is not None and time.monotonic() - self._result_at < RESULT_MAX_AGE:
                return self._result
            if self._running is None or self._running.done():
                self._running = self._runner.submit(self._ping)
            running = self._running
        try:
            result = running.result(timeout=CHECK_TIMEOUT)
        except concurrent.futures.TimeoutError:
            result = pluginbase.HealthcheckResult(
                available=False, reason='database unreachable',
                details='no answer within %.0f s' % CHECK_TIMEOUT)
        with self._lock:
            self._result, self._result_at = result, time.monotonic()
        return result

    def _ping(self):
        try:
            if self._database is None:
                self._database = db_api.Database(self.oslo_conf)
            self._database.ping()
        except Exception as exc:
            return pluginbase.HealthcheckResult(
                available=False, reason='database unreachable',
                details='%s: %s' % (type(exc).__name__, exc))
        return pluginbase.HealthcheckResult(available=True, reason='OK',
                                            details='the database answers')


class CacheDirectoryCheck(pluginbase.HealthcheckBaseExtension):
    """Available when the cache directory takes a write."""

    def healthcheck(self, server_port):
        cache_conf = self.oslo_conf.cache
        if not cache_conf.enabled:
            return pluginbase.HealthcheckResult(available=True, reason='OK',
                                                details='the cache is disabled')
        directory = os.path.abspath(cache_conf.cache_dir)
        try:
            with tempfile.NamedTemporaryFile(dir=directory, prefix='.healthcheck-') as probe:
                probe.write(b'ok')
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as exc:
            return pluginbase.HealthcheckResult(
                available=False, reason='cache directory not writable',
                details='%s: %s' % (directory, exc.strerror or exc))
        return pluginbase.HealthcheckResult(available=True, reason='OK',
                                            details='%s is writable' % directory)
