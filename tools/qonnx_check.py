"""Import a QONNX model and measure it on a dataset split: accuracy of the golden model
and its disagreements with the reference execution (bnnhw.qonnx_ref), image by image.

    .venv/bin/python tools/qonnx_check.py tests/data/qonnx/TFC_1W1A.onnx --dataset mnist
    .venv/bin/python tools/qonnx_check.py tests/data/qonnx/CNV_tiny_1W1A.onnx --count 2000

Prints one JSON object (accuracy of golden and reference, disagreements, seconds).
"""
from __future__ import annotations

import argparse
import json
import time



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--split", default="test")
    ap.add_argument("--count", type=int, default=None, help="first N images only")
    args = ap.parse_args(argv)
    import onnx

    from bnnhw.golden import GoldenModel
    from bnnhw.qonnx_import import import_qonnx
    from bnnhw.qonnx_ref import Reference
    from bnnhw.train import data as D

    t0 = time.time()
    ir = import_qonnx(args.model)
    t_imp = time.time() - t0
    ds = D.load_dataset(args.dataset)
    x, y = D.select(ds, args.split, D.make_split(ds))
    if args.count is not None:
        x, y = x[:args.count], y[:args.count]
    t0 = time.time()
    g = GoldenModel(ir).predict(x)
    t_gold = time.time() - t0
    t0 = time.time()
    r = Reference(onnx.load(args.model)).predict(x)
    t_ref = time.time() - t0
    print(json.dumps({
        "model": args.model, "dataset": ds.name, "split": args.split, "images": int(len(y)),
        "accuracy_golden": round(float((g == y).mean()), 4),
        "accuracy_reference": round(float((r == y).mean()), 4),
        "disagreements": int((g != r).sum()),
        "seconds": {"import": round(t_imp, 2), "golden": round(t_gold, 2),
                    "reference": round(t_ref, 2)},
    }))


if __name__ == "__main__":
    main()
