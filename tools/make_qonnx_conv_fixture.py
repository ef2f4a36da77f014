"""Make tests/data/qonnx/CNV_tiny_1W1A.onnx: a tiny W1A1 conv BNN trained a few steps
with Brevitas and exported by Brevitas's own QONNX exporter (not by bnnhw).

    .venv/bin/pip install brevitas      # not a bnnhw dependency; only this script needs it
    .venv/bin/python tools/make_qonnx_conv_fixture.py [-o PATH] [--steps 150]

The network follows Brevitas's bnn_pynq CNV in miniature: input 2x - 1 ->
bipolar QuantIdentity; QuantConv 1->8 3x3 -> BN -> bipolar -> MaxPool 2 (pool
after sign); QuantConv 8->16 3x3 -> MaxPool 2 -> BN -> bipolar (pool before
BN); flatten of a 16x5x5 map (larger than 1x1, so flatten-order bugs show);
QuantLinear 400->10 -> a TensorNorm-like scalar affine.  Binary weights and
activations use Brevitas's SignedBinary*PerTensorConst quantisers with scale 1
(bnn_pynq's setting; Brevitas's default constant 0.1 is not exact in float32).
Trained for a few Adam steps on the first MNIST training images (the dataset
prepared by `bnnhw data mnist`), seeded.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn


def build():
    import brevitas.nn as qnn
    from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    # scale 1, as bnn_pynq's CommonWeightQuant/CommonActQuant (the default const is 0.1)
    W = dict(weight_quant=SignedBinaryWeightPerTensorConst.let(scaling_const=1.0), bias=False)
    A = dict(act_quant=SignedBinaryActPerTensorConst.let(scaling_const=1.0))

    class TensorNorm(nn.Module):
        """Brevitas bnn_pynq's TensorNorm: one scalar mean/var/weight/bias."""

        def __init__(self, eps=1e-4, momentum=0.1):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.weight = nn.Parameter(torch.rand(1))
            self.bias = nn.Parameter(torch.rand(1))
            self.register_buffer("running_mean", torch.zeros(1))
            self.register_buffer("running_var", torch.ones(1))

        def forward(self, x):
            if self.training:
                mean, var = x.mean(), x.var()
                with torch.no_grad():
                    self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                    self.running_var.mul_(1 - self.momentum).add_(self.momentum * var)
            else:
                mean, var = self.running_mean, self.running_var
            return (x - mean) / (var + self.eps) ** 0.5 * self.weight + self.bias

    class TinyCNV(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(**A)
            self.conv1 = qnn.QuantConv2d(1, 8, 3, weight_quant=W["weight_quant"], bias=False)
            self.bn1 = nn.BatchNorm2d(8, eps=1e-4)
            self.act1 = qnn.QuantIdentity(**A)
            self.pool1 = nn.MaxPool2d(2)
            self.conv2 = qnn.QuantConv2d(8, 16, 3, weight_quant=W["weight_quant"], bias=False)
            self.pool2 = nn.MaxPool2d(2)
            self.bn2 = nn.BatchNorm2d(16, eps=1e-4)
            self.act2 = qnn.QuantIdentity(**A)
            self.fc = qnn.QuantLinear(16 * 5 * 5, 10, weight_quant=W["weight_quant"], bias=False)
            self.norm = TensorNorm()

        def forward(self, x):
            x = 2.0 * x - torch.tensor([1.0], device=x.device)
            x = self.inp(x)
            x = self.pool1(self.act1(self.bn1(self.conv1(x))))
            x = self.act2(self.bn2(self.pool2(self.conv2(x))))
            x = x.view(x.shape[0], -1)
            return self.norm(self.fc(x))

    return TinyCNV()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=os.path.join(
        os.path.dirname(__file__), "..", "tests", "data", "qonnx", "CNV_tiny_1W1A.onnx"))
    ap.add_argument("--steps", type=int, default=150)
    args = ap.parse_args(argv)
    from brevitas.export import export_qonnx

    from bnnhw.train import data as D

    torch.manual_seed(0)
    ds = D.load_dataset("mnist")
    x, y = D.select(ds, "train", D.make_split(ds))
    x = torch.from_numpy(x[:64 * args.steps].astype(np.float32) / 255)
    y = torch.from_numpy(np.asarray(y[:64 * args.steps], dtype=np.int64))
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for s in range(args.steps):
        xb, yb = x[64 * s:64 * (s + 1)], y[64 * s:64 * (s + 1)]
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        # negative BN scales on every third channel, as trained BNNs have them (row
        # inversion, AND pooling): the conv row, the BN scale and mean negated together
        # (the same function up to sign(0) and, for the pool before BN, max -> min)
        for conv, bn in ((model.conv1, model.bn1), (model.conv2, model.bn2)):
            conv.weight[::3] *= -1
            bn.weight[::3] *= -1
            bn.running_mean[::3] *= -1
    export_qonnx(model, input_t=torch.zeros(1, 1, 28, 28), export_path=args.output)
    # one self-contained file (torch's dynamo exporter writes the weights beside it)
    import onnx
    m = onnx.load(args.output)
    onnx.save(m, args.output, save_as_external_data=False)
    if os.path.exists(args.output + ".data"):
        os.unlink(args.output + ".data")
    print(f"wrote {args.output} (loss {float(loss):.3f} after {args.steps} steps)", file=sys.stderr)


if __name__ == "__main__":
    main()
