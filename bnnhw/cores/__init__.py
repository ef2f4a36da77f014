"""Amaranth layer cores (streaming dataflow engines) and their registry.

Importing this package registers every built-in core; see
:mod:`bnnhw.cores.registry` for adding one and :mod:`bnnhw.cores.lowering`
for how IR layers map to chains of cores.
"""
from ._common import StreamCore, Schedule
from . import registry
from .mvau import MatrixVectorUnit, MVAU, FirstLayerMVAU
from .maxpool import MaxPool
from .swu import SlidingWindow
from .fifo import StreamFIFO
from .label_select import LabelSelect
from .width import WidthConverter
from .score_table import ScoreTable

__all__ = ["StreamCore", "Schedule", "registry", "MatrixVectorUnit", "MVAU", "FirstLayerMVAU",
           "MaxPool", "SlidingWindow", "StreamFIFO", "LabelSelect",
           "WidthConverter", "ScoreTable"]
