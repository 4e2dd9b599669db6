"""The examples in the benchmark scripts' docstrings hold (the scripts run outside CI)."""

import doctest
import importlib
import os

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), 'bench')


@pytest.mark.parametrize('name', ['_common', 'cache_api'])
def test_bench_docstring_examples(name, monkeypatch):
    monkeypatch.syspath_prepend(BENCH)
    module = importlib.import_module(name)
    failures, tried = doctest.testmod(module)
    assert tried > 0
    assert failures == 0
