"""The examples in the benchmark scripts' docstrings hold (the scripts run outside CI)."""

import doctest
import importlib
import os
import signal
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), 'bench')


@pytest.mark.parametrize('name', ['_common', 'cache_api', 'pauses'])
def test_bench_docstring_examples(name, monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    module = importlib.import_module(name)
    failures, tried = doctest.testmod(module)
    assert tried > 0
    assert failures == 0


def test_a_benchmark_stopped_by_sigterm_removes_its_scratch_directory(tmp_path):
    # Left behind, the scratch directories of a few runs (images of gigabytes)
    # fill the disk; kill and pkill send SIGTERM.
    script = ('import sys, time; sys.path.insert(0, %r); import _common; '
              'print(_common.workdir("gc-bench-test-"), flush=True); time.sleep(60)' % BENCH)
    env = dict(os.environ, GLANCE_CACHE_BENCH_DIR=str(tmp_path))
    env.pop('GLANCE_CACHE_BENCH_KEEP', None)
    proc = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE, text=True,
                            env=env)
    directory = proc.stdout.readline().strip()
    assert os.path.isdir(directory)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert not os.path.exists(directory)
