"""Property tests: the golden model equals the torch model on every layer and input.

Random small networks (fc-only and conv; 1-bit, 8-bit unsigned/signed, 5-bit
digits and other input quantisations; stride, binary -1/+1 and integer
padding; pooling before BN or after sign; negative, zero and tiny norm
scales; pre-activations exactly on a threshold; odd sizes; scalar or per-class
last norm; BN or shift-based BN).  For every input: each layer's accumulator
and output bits, the class, and the order of the class scores match torch.
"""
import numpy as np
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bnnhw.train.models import build_model

from .nets import compare, images_for, randomize, random_spec

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _check(spec, seed):
    torch.manual_seed(seed)
    model = build_model(spec)
    imgs = images_for(spec, np.random.default_rng(seed))
    randomize(model, imgs, seed)
    ir = compare(model, imgs)
    _events(model, imgs, ir)


def _events(model, imgs, ir):
    """Coverage notes (pytest --hypothesis-show-statistics)."""
    zeros = []
    hs = [b.norm.register_forward_hook(lambda m, i, o: zeros.append(int((o == 0).sum())))
          for b in model.blocks]
    with torch.no_grad():
        scores = model(torch.from_numpy(imgs))
    for h in hs:
        h.remove()
    if sum(zeros[:-1]):
        event("a hidden pre-activation is exactly 0")
    top = scores.max(1, keepdim=True).values
    if bool(((scores == top).sum(1) > 1).any()):
        event("tied top scores")
    event(f"scores: {ir.output_layer.score_kind}")
    dirs = np.concatenate([l.direction for l in ir.dense_layers if not l.is_output] + [[]])
    for d, name in ((-1, "inverted"), (0, "constant")):
        if (dirs == d).any():
            event(f"{name} channels")
    if any(getattr(l, "kind", "") == "maxpool" and (l.pool_op == "and").any() for l in ir.layers):
        event("and-pooling")


@SETTINGS
@given(spec=random_spec("fc"), seed=st.integers(0, 2**31 - 1))
def test_fc_networks_match_torch(spec, seed):
    _check(spec, seed)


@SETTINGS
@given(spec=random_spec("conv"), seed=st.integers(0, 2**31 - 1))
def test_conv_networks_match_torch(spec, seed):
    _check(spec, seed)
