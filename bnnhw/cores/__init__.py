"""Amaranth layer cores (streaming dataflow engines) and their registry.

Every core is a :class:`StreamCore` (``wiring.Component`` with stream ports
``i`` and ``o``, plain unsigned payloads whose field layout each core
documents, orders from :mod:`bnnhw.layout`), exposes ``throughput`` (cycles
per frame), ``latency`` and ``schedule(frames)`` (exact transfer cycles of a
stall-free run), validates its parameters with errors naming the layer, and
registers itself with a conformance adapter (:mod:`.registry`).

=====================  ==================  ========================================
registry name          class               module
=====================  ==================  ========================================
``mvau``               MVAU                mvau.py (binary; thresholds or scores)
``first_layer_mvau``   FirstLayerMVAU      mvau.py (integer inputs, bit-serial)
``swu``                SlidingWindow       swu.py (line buffers, im2col windows)
``maxpool``            MaxPool             maxpool.py (OR/AND per channel)
``fifo``               StreamFIFO          fifo.py
``label_select``       LabelSelect         label_select.py (argmax, ties low)
``width_converter``    WidthConverter      width.py
``score_table``        ScoreTable          score_table.py (IR "rank_table" scores)
=====================  ==================  ========================================

Also: :mod:`.lowering` (layer descriptions -> core chains, ``ChainTop``),
:mod:`.simulate` (run a core under random stalls with a stream monitor),
:mod:`.synth` (Yosys cell counts).  The conformance suite lives in
``tests/cores``; adding a core = one module in this package with one
``@register`` (the registry imports every module of the package).
"""
from ._common import StreamCore, Schedule
from . import registry
# built-in cores: importing registers them
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
