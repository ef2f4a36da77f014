"""tests/boards: the ``slow`` tier (extra real bitstream builds) is skipped unless ``-m``
selects it, as in tests/cores."""
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
