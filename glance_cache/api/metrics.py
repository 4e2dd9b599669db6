"""GET /metrics: the node's Prometheus metrics, unauthenticated.

Served on the API port, or, with ``[metrics] bind_port``, by a listener of
its own in the node's caching-worker process (then not on the API port);
``[metrics] enabled = false`` serves nothing. See glance_cache/metrics.py
for the event counters; the state is read here at each scrape.
"""

import collections
import logging
import os

import prometheus_client
import webob
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

from glance_cache import cluster, metrics
from glance_cache.cache import queue as job_queue
from glance_cache.db import api as db_api

LOG = logging.getLogger(__name__)


class NodeCollector:
    """The node's state, read at each scrape (a prometheus_client custom collector)."""

    def __init__(self, services):
        self.services = services

    def collect(self):
        svc = self.services
        if svc.cache is not None:
            yield from self._cache(svc)
            yield from self._jobs(svc)
            yield from self._nodes(svc)

    @staticmethod
    def _cache(svc):
        entries = svc.cache.list()
        yield GaugeMetricFamily('glance_cache_entries', 'Images in the cache.', len(entries))
        yield GaugeMetricFamily('glance_cache_size_bytes', 'Bytes of the images in the cache.',
                                sum(e.size for e in entries))
        yield GaugeMetricFamily('glance_cache_max_size_bytes', 'The cache\'s max_size.',
                                svc.cache.max_size)

    @staticmethod
    def _jobs(svc):
        # The cached records are counted by name: one per image the node holds.
        records = svc.jobs.pending() + svc.jobs.failed()
        counts = collections.Counter(r['state'] for r in records)
        counts[job_queue.CACHED] = len(svc.jobs.cached_record_ids())
        by_state = GaugeMetricFamily('glance_cache_jobs', 'Caching jobs by state.',
                                     labels=['state'])
        for state in job_queue.STATES:
            by_state.add_metric([state], counts[state])
        yield by_state
        yield GaugeMetricFamily('glance_cache_queue_depth', 'Jobs waiting to be cached.',
                                sum(1 for r in records if r['state'] == job_queue.QUEUED))
        live = svc.worker.live_progress() if svc.worker is not None else {}
        done = GaugeMetricFamily('glance_cache_job_bytes_done',
                                 'Bytes written so far by each running caching job.',
                                 labels=['image_id'])
        size = GaugeMetricFamily('glance_cache_job_size_bytes',
                                 'Size of the image of each running caching job.',
                                 labels=['image_id'])
        for record in records:
            if record['state'] == job_queue.CACHING:
                image_id = record['image_id']
                done.add_metric([image_id], live.get(image_id, record['bytes_done']))
                size.add_metric([image_id], record['size'] or 0)
        yield done
        yield size

    @staticmethod
    def _nodes(svc):
        try:
            nodes = svc.db.node_list()
        except Exception as exc:
            LOG.warning('Metrics: cannot read the node registry: %s', exc)
            return
        now = db_api.utcnow()
        timeout = svc.conf.cluster.node_timeout
        age = GaugeMetricFamily('glance_cache_node_heartbeat_age_seconds',
                                'Seconds since each node\'s last heartbeat, as this node '
                                'sees it.', labels=['node'])
        up = GaugeMetricFamily('glance_cache_node_up',
                               '1 if the node\'s heartbeat is within node_timeout.',
                               labels=['node'])
        for node in nodes:
            age.add_metric([node['name']], cluster.heartbeat_age(node, now))
            up.add_metric([node['name']],
                          1 if cluster.node_state(node, timeout, now) == cluster.UP else 0)
        yield age
        yield up


class Exporter:
    """What a scrape returns: every process's events plus the node's state."""

    def __init__(self, services):
        self.registry = prometheus_client.CollectorRegistry()
        directory = os.environ.get(metrics.MULTIPROC_ENV)
        if directory:
            multiprocess.MultiProcessCollector(self.registry, path=directory)
        else:
            # One process: its own counters are the node's.
            for collector in metrics.EVENT_METRICS:
                self.registry.register(collector)
        self.registry.register(NodeCollector(services))
        self._server = None

    def render(self):
        """The exposition text of a scrape."""
        return prometheus_client.generate_latest(self.registry)

    def serve(self, host, port):
        """Serve /metrics on a listener of its own (the node's worker process calls this)."""
        if self._server is None:
            self._server, _thread = prometheus_client.start_http_server(
                port, addr=host, registry=self.registry)
            LOG.info('Serving metrics at http://%s:%d/metrics', host, port)

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def application(exporter):
    """A WSGI app that answers every request with a scrape of ``exporter``."""

    def app(environ, start_response):
        resp = webob.Response(body=exporter.render(), content_type=None)
        resp.headers['Content-Type'] = metrics.CONTENT_TYPE
        return resp(environ, start_response)

    return app
