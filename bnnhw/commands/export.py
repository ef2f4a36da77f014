"""``bnnhw export``: fold a training checkpoint (or import a QONNX model) into the integer
network IR, or write a network as a QONNX model (``--format qonnx``)."""
from __future__ import annotations

import os

from ..errors import BnnhwError, ModelFileError
from .common import check_output_path

NAME = "export"
HELP = ("fold a trained checkpoint or import a QONNX model (BatchNorm + sign -> integer "
        "thresholds) into the bit-exact network IR file used by the golden model and the "
        "hardware, or write a network as QONNX (--format qonnx)")


def add_arguments(p):
    p.add_argument("--model", required=True,
                   help="training checkpoint (.pt) from `bnnhw train`, a QONNX/Brevitas "
                        "model (.onnx, imported), or (with --format qonnx) an IR file")
    p.add_argument("-o", "--output", default=None,
                   help="file to write (default: the model path with the suffix .bnn, or .onnx "
                        "for --format qonnx)")
    p.add_argument("--format", choices=["bnn", "qonnx"], default=None,
                   help="bnn: the bnnhw IR (default); qonnx: a QONNX model for FINN/Brevitas "
                        "tools (default when -o ends in .onnx); see docs/qonnx.md")
    p.add_argument("--self-check", type=int, default=64, metavar="N",
                   help="compare the golden model with the torch model / the ONNX reference "
                        "execution on N random images after export (default 64; 0 to skip)")


def run(args):
    from ..export import export_checkpoint, load_model_any
    from ..ir import Dense, is_ir_file
    from ..qonnx_import import import_qonnx, is_onnx_file

    model = args.model
    fmt = args.format or ("qonnx" if (args.output or "").lower().endswith(".onnx") else "bnn")
    out = args.output or (os.path.splitext(model)[0] + (".onnx" if fmt == "qonnx" else ".bnn"))
    check_output_path(out)
    if os.path.exists(model) and os.path.exists(out) and os.path.samefile(model, out):
        raise BnnhwError(f"output {out!r} is the input model", "choose another -o path")
    if args.self_check < 0:
        raise BnnhwError(f"--self-check must be >= 0, not {args.self_check}", "e.g. --self-check 64")
    if fmt == "qonnx":
        from ..qonnx_export import export_qonnx
        if os.path.exists(model) and is_onnx_file(model):
            ir = import_qonnx(model, self_check=args.self_check)
        elif os.path.exists(model) and is_ir_file(model):
            ir, _ = load_model_any(model)
        else:
            ir = export_checkpoint(model, self_check=args.self_check)
        m = export_qonnx(ir, None, self_check=args.self_check)
        try:
            import onnx
            onnx.save(m, out)
        except OSError as e:
            raise ModelFileError(f"cannot write {out!r}: {e.strerror}",
                                 "choose a writable location for -o") from None
        ops = {}
        for n in m.graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        res = {"output": out, "format": "qonnx", "bytes": os.path.getsize(out),
               "nodes": len(m.graph.node), "ops": ops, "round_trip": "identical IR",
               "self_check": {"images": args.self_check + 2, "disagreements": 0}
               if args.self_check else None}
        if not getattr(args, "json", False):
            print(f"wrote {out} (QONNX, {res['nodes']} nodes: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(ops.items()))
                  + "); imports back to the same IR")
        return res
    if os.path.exists(model) and is_ir_file(model):
        raise ModelFileError(f"{model!r} is already an exported IR file",
                             "use it directly with --model; export reads a training "
                             "checkpoint (.pt) or a QONNX model (.onnx)")
    if os.path.exists(model) and is_onnx_file(model):
        ir = import_qonnx(model, self_check=args.self_check)
    else:
        ir = export_checkpoint(model, self_check=args.self_check)
    try:
        ir.save(out)
    except OSError as e:
        raise ModelFileError(f"cannot write {out!r}: {e.strerror}",
                             "choose a writable location for -o") from None
    dense = ir.dense_layers
    hidden = [l for l in dense if not l.is_output]
    q = ir.input
    res = {
        "output": out,
        "bytes": os.path.getsize(out),
        "layers": len(ir.layers),
        "weighted_layers": len(dense),
        "num_classes": ir.num_classes,
        "input": (f"1-bit (raw >= {q.threshold})" if q.bits == 1 else
                  f"{q.bits}-bit {'signed' if q.signed else 'unsigned'}, offset {q.offset}"),
        "scores": ir.output_layer.score_kind,
        "inverted_channels": int(sum(int((l.direction < 0).sum()) for l in hidden)),
        "constant_channels": int(sum(int((l.direction == 0).sum()) for l in hidden)),
        "self_check": ir.provenance.get("self_check"),
    }
    if not getattr(args, "json", False):
        for l in ir.layers:
            if isinstance(l, Dense):
                extra = (f"thresholds in [{int(l.thresholds.min())}, {int(l.thresholds.max())}]"
                         if l.thresholds is not None else f"scores: {l.score_kind}")
                print(f"  {l.name:10s} {l.kind:4s} MW={l.mw:<6d} MH={l.mh:<5d} "
                      f"acc {l.domain} [{l.acc_min}, {l.acc_max}]  {extra}")
            else:
                n_and = int((l.pool_op == "and").sum())
                print(f"  {l.name:10s} pool {l.kernel}x{l.kernel}  and-channels {n_and}")
        print(f"wrote {out} ({res['bytes']} bytes, {res['layers']} layers, "
              f"scores {res['scores']}, {res['inverted_channels']} inverted and "
              f"{res['constant_channels']} constant channels)")
    return res
