"""Fixtures of the tabular tests."""

import pytest


@pytest.fixture
def count_calls(monkeypatch):
    """``count_calls(module, name)`` replaces ``module.name`` for the test by a wrapper that
    records one entry per call and returns that list."""
    def install(module, name):
        calls, real = [], getattr(module, name)

        def counted(*args):
            calls.append(1)
            return real(*args)

        monkeypatch.setattr(module, name, counted)
        return calls
    return install
