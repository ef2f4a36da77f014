"""tests/cores: the ``slow`` tier (deep synthesis runs) is skipped unless ``-m`` selects it.

pyproject declares ``slow`` as "not in the default suite (run with -m slow)";
this enforces that for the tests in this folder only."""
import os

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config, items):
    if config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="slow tier: run with -m slow")
    for item in items:
        if "slow" in item.keywords and str(item.path).startswith(_HERE):
            item.add_marker(skip)
