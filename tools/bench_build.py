#!/usr/bin/env python3
"""Benchmark ``bnnhw build``: TFC on the iCEBreaker, CNV on the ULX3S-85F, beside FINN.

Each case runs ``python -m bnnhw build ... --json`` as a child process and
records LUT4, block RAMs, fmax, fps_compute (at the build clock), the build's
wall time and the peak memory of the child and everything it waited for
(``os.wait4`` rusage: the largest resident set among Python, Yosys and nextpnr,
which run as YoWASP WebAssembly, single-threaded, at most 4 GiB each).

Cases (``--cases``, default ``tfc,cnv``):

* ``tfc``: FINN's TFC (784 -> 3 x 64 -> 10, 1-bit input), trained briefly on mnist5k
  here (``bnnhw train``; a few seconds), or ``--tfc-model PATH``; built for the
  iCEBreaker with the fastest folding that fits.
* ``cnv``: CNV (``--cnv-model``, default ``/work/runs/cnv_short.pt`` if it exists, else a
  random-weight CNV of ``--cnv-width``) on the ULX3S-85F.  Folding: by default every
  layer within 16,384 cycles/frame at a 75 MHz PLL clock (4,578 frames/s, above FINN's
  CNV W1A1 on the Pynq-Z1: 3,039 frames/s from 32,768 cycles at 100 MHz);
  ``--cnv-target-cycles 32768`` gives FINN's operating point, ``--cnv-fit`` lets bnnhw
  choose the fastest folding that fits instead.

The result table sets them beside FINN's published CNV W1A1 on the Pynq-Z1 (Z7020):
3,039 frames/s at 100 MHz, 26,072 LUT6, 124 BRAM36 (Xilinx LUT6 and BRAM36 vs our
LUT4 and 18 kbit DP16KD / 4 kbit SB_RAM40_4K: compare within a family, or say so).

    .venv/bin/python tools/bench_build.py [--cases tfc,cnv] [--out DIR] [--json]

A case that fails (e.g. nextpnr out of memory) is reported with the stage that
failed and how long it ran; the others still run.  Results: DIR/bench_build.json.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = sys.executable

FINN_CNV_PYNQ = {"system": "FINN / BNN-PYNQ CNV W1A1, Pynq-Z1 (Z7020)", "fps": 3039,
                 "clock_mhz": 100, "lut": 26072, "lut_kind": "LUT6", "bram": 124,
                 "bram_kind": "BRAM36 (36 kbit)", "cycles_per_frame": 32768,
                 "build": "Vivado HLS + Vivado (hours, tens of GB per FINN users)"}


def _run_child(argv, log_path, timeout):
    """Run ``argv`` with stdout/stderr to files; (rc, stdout, wall s, peak RSS MiB)."""
    out_path = log_path + ".stdout"
    t0 = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(out_path, "w") as out, open(log_path, "w") as err:
        # own process group: a timeout must also stop Yosys/nextpnr below the build
        p = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT, env=env,
                             start_new_session=True)
        deadline = t0 + timeout if timeout else None
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if deadline and time.monotonic() > deadline:
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(p.pid, 0)
                err.write(f"\n[bench_build] killed after the {timeout:g} s timeout\n")
                break
            time.sleep(1.0)
    wall = time.monotonic() - t0
    rc = os.waitstatus_to_exitcode(status)
    # ru_maxrss (KiB on Linux): the child or the largest descendant it waited for
    peak = ru.ru_maxrss / 1024.0
    with open(out_path) as f:
        stdout = f.read()
    return rc, stdout, wall, peak


def _last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def _tfc_model(out, given):
    if given:
        return given
    path = os.path.join(out, "tfc_mnist5k.pt")
    if not os.path.exists(path):
        print("training TFC on mnist5k (20 short epochs) ...", file=sys.stderr, flush=True)
        subprocess.run([PY, "-m", "bnnhw", "train", "--arch", "tfc", "--dataset", "mnist5k",
                        "--epochs", "20", "--lr", "0.02", "--input-bits", "1",
                        "--batch-size", "100", "--json", "-o", path], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
    return path


def _cnv_model(out, given, width):
    if given:
        return given
    default = "/work/runs/cnv_short.pt"
    if width == 1.0 and os.path.exists(default):
        return default
    path = os.path.join(out, f"cnv_w{width:g}_random.bnn")
    if not os.path.exists(path):
        sys.path.insert(0, ROOT)
        import torch

        from bnnhw.export import export_model
        from bnnhw.train.models import build_model, input_quant_for, make_spec
        torch.manual_seed(0)
        spec = make_spec("cnv", input_shape=(3, 32, 32), num_classes=10, width=width,
                         input_quant=input_quant_for("image_signed"))
        model = build_model(spec).eval()
        ir = export_model(model, dataset={"name": "cifar10"}, source="random weights")
        ir.save(path)
    return path


def run_case(name, model, board, extra, out, timeout):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    argv = [PY, "-m", "bnnhw", "build", "--model", model, "--board", board, "-o", d,
            "--json", *extra]
    print(f"[{name}] {' '.join(argv[2:])}", file=sys.stderr, flush=True)
    rc, stdout, wall, peak = _run_child(argv, os.path.join(out, f"{name}.log"), timeout)
    res = _last_json(stdout) or {}
    row = {"case": name, "model": model, "board": board, "options": extra, "rc": rc,
           "wall_s": round(wall, 1), "peak_rss_mib": round(peak, 1), "ok": rc == 0}
    for k in ("device", "lut", "ff", "ebr", "spram", "fmax_mhz", "clock_mhz", "fps_compute",
              "fps_at_fmax", "fps_link", "bound_cycles_per_frame", "bottleneck",
              "timing_met", "bitstream", "error", "hint"):
        row[k] = res.get(k)
    rep_path = os.path.join(d, "report.json")
    if rc == 0 and os.path.exists(rep_path):
        with open(rep_path) as f:
            rep = json.load(f)
        row["seconds"] = rep.get("seconds")
        row["estimate"] = {k: (rep["estimate"]["fit"] or {}).get(k) for k in ("lut", "ebr")}
    else:
        # how far did it get? the last stage line of the log
        with open(os.path.join(out, f"{name}.log")) as f:
            stages = [l.strip() for l in f if l.startswith("[bnnhw build]")]
        row["last_stage"] = stages[-1] if stages else None
    print(f"[{name}] rc={rc} in {wall:.0f} s, peak {peak:.0f} MiB: "
          + (f"{row['lut']} LUT4, {row['ebr']} EBR, fmax {row['fmax_mhz']} MHz, "
             f"{row['fps_compute']} fps" if rc == 0 else f"{row.get('error')}"),
          file=sys.stderr, flush=True)
    return row


def table(rows):
    head = (f"{'case':<6} {'board/device':<24} {'LUT':>14} {'EBR/BRAM':>16} {'fmax MHz':>9} "
            f"{'clock':>6} {'cycles/fr':>9} {'fps':>10} {'build s':>8} {'peak MiB':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if not r["ok"]:
            lines.append(f"{r['case']:<6} {r['board']:<24} FAILED after {r['wall_s']} s: "
                         f"{(r.get('error') or r.get('last_stage') or '')[:90]}")
            continue
        lines.append(f"{r['case']:<6} {r['board'] + ' ' + str(r['device']):<24} "
                     f"{str(r['lut']) + ' LUT4':>14} {str(r['ebr']) + ' EBR':>16} "
                     f"{r['fmax_mhz'] or 0:>9.1f} {r['clock_mhz']:>6g} "
                     f"{r['bound_cycles_per_frame']:>9} {r['fps_compute']:>10,.0f} "
                     f"{r['wall_s']:>8.0f} {r['peak_rss_mib']:>9.0f}")
    f = FINN_CNV_PYNQ
    lines.append(f"{'FINN':<6} {'Pynq-Z1 Z7020':<24} {str(f['lut']) + ' LUT6':>14} "
                 f"{str(f['bram']) + ' BRAM36':>16} {'-':>9} {f['clock_mhz']:>6} "
                 f"{f['cycles_per_frame']:>9} {f['fps']:>10,} {'hours':>8} {'-':>9}")
    for r in rows:
        if r["ok"] and r["case"].startswith("cnv") and r.get("fmax_mhz"):
            lines.append(f"  {r['case']} at its fmax: {r['fps_at_fmax']:,.0f} frames/s; "
                         f"at FINN's 100 MHz it would give "
                         f"{100e6 / r['bound_cycles_per_frame']:,.0f} frames/s")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="tfc,cnv")
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "bench_build"))
    ap.add_argument("--tfc-model", default=None)
    ap.add_argument("--tfc-clock-mhz", type=float, default=None)
    ap.add_argument("--cnv-model", default=None)
    ap.add_argument("--cnv-width", type=float, default=1.0)
    ap.add_argument("--cnv-board", default="ulx3s-85f")
    ap.add_argument("--cnv-target-cycles", type=int, default=16384)
    ap.add_argument("--cnv-fit", action="store_true",
                    help="let bnnhw choose the fastest CNV folding that fits")
    ap.add_argument("--cnv-clock-mhz", type=float, default=75.0,
                    help="accelerator clock of the CNV build (0: the board oscillator)")
    ap.add_argument("--cnv-allow-timing-fail", action="store_true",
                    help="keep the CNV bitstream and report when fmax is below the clock "
                         "(the table then also gives the frames/s at the achieved fmax)")
    ap.add_argument("--timeout", type=float, default=0, help="seconds per case (0: none)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    rows = []
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if "tfc" in cases:
        extra = ["--clock-mhz", str(args.tfc_clock_mhz)] if args.tfc_clock_mhz else []
        rows.append(run_case("tfc", _tfc_model(out, args.tfc_model), "icebreaker", extra,
                             out, args.timeout))
    if "cnv" in cases:
        extra = [] if args.cnv_fit else ["--target-cycles", str(args.cnv_target_cycles)]
        if args.cnv_clock_mhz:
            extra += ["--clock-mhz", str(args.cnv_clock_mhz)]
        if args.cnv_allow_timing_fail:
            extra += ["--allow-timing-fail"]
        rows.append(run_case("cnv", _cnv_model(out, args.cnv_model, args.cnv_width),
                             args.cnv_board, extra, out, args.timeout))
    result = {"rows": rows, "finn": FINN_CNV_PYNQ}
    with open(os.path.join(out, "bench_build.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(table(rows))
    if args.json:
        print(json.dumps(result))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
