"""``bnnhw boards``: list board targets, show one, plan its clock, build or check a link.

* ``bnnhw boards`` -- table of the supported boards (``--json``: ``{"boards": [...]}``);
* ``bnnhw boards --board NAME [--clock-mhz F]`` -- one board, and what the PLL makes
  of ``F`` (an impossible clock fails with the reachable range and nearby clocks);
* ``bnnhw boards --board NAME --build-demo -o DIR [--selftest]`` -- a bitstream of the
  UART shell (or the self-test shell) around a stand-in accelerator (class = sum of
  the image bytes mod 10, 16-byte images), to check a board and its link without a
  model;
* ``bnnhw boards --link-test --port PORT [--baud B]`` -- sends random images to a
  board running the demo bitstream and checks every answer.
"""
from __future__ import annotations

from ..errors import BnnhwError
from .common import log

NAME = "boards"
HELP = "list FPGA board targets; show one, plan its clock, build/check a demo link"

DEMO_FRAME = 16
DEMO_CLASSES = 10


def add_arguments(p):
    p.add_argument("--board", default=None,
                   help="board name (see the list) or an amaranth-boards platform as "
                        "module:Class")
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="accelerator clock through the PLL (default: the board oscillator)")
    p.add_argument("--baud", type=int, default=None,
                   help="UART baud rate (default: 3000000 where the clock divides it within "
                        "1.5%%, else 1000000)")
    p.add_argument("--build-demo", action="store_true",
                   help="build a bitstream of the shell around a stand-in accelerator")
    p.add_argument("--selftest", action="store_true",
                   help="with --build-demo: the LED self-test variant (no host needed)")
    p.add_argument("-o", "--output", default=None, help="--build-demo: output directory")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    p.add_argument("--link-test", action="store_true",
                   help="check a board running the demo bitstream over --port")
    p.add_argument("--port", default=None, help="--link-test: serial port, e.g. /dev/ttyUSB1")
    p.add_argument("--count", type=int, default=100, help="--link-test: number of images")


def _table(specs):
    head = (f"{'board':<12} {'device':<14} {'pkg':<6} {'LUT4':>6} {'EBR':>4} {'kbit':>5} "
            f"{'SPRAM':>5} {'DSP':>4} {'osc MHz':>7} {'max baud':>9}  tools")
    lines = [head, "-" * len(head)]
    for b in specs:
        c = b.capacity
        lines.append(f"{b.name:<12} {b.device:<14} {b.package:<6} {c.lut4:>6} {c.ebr:>4} "
                     f"{c.ebr_total_bits // 1024:>5} {c.spram:>5} {c.dsp:>4} {b.osc_mhz:>7g} "
                     f"{b.max_baud:>9}  {b.pnr_tool} + {b.pack_tool}")
    return "\n".join(lines)


def _demo_accelerator():
    from ..boards.standin import SumModAccelerator
    return SumModAccelerator(DEMO_FRAME, 8, DEMO_CLASSES)


def _demo_selftest_images():
    import random
    from ..boards.standin import sum_mod
    rng = random.Random(2024)
    imgs = [[rng.randrange(256) for _ in range(DEMO_FRAME)] for _ in range(8)]
    return imgs, [sum_mod(i, DEMO_CLASSES) for i in imgs]


def run(args):
    from ..boards.clock import plan_clock
    from ..boards.registry import get_board, list_boards
    from ..boards.shell import default_baud
    from ..boards.uart import baud_divisor

    if args.link_test:
        return _link_test(args)
    if args.board is None:
        if args.build_demo or args.clock_mhz is not None:
            raise BnnhwError("this needs --board NAME", "see `bnnhw boards` for the names")
        specs = list_boards()
        if not args.json:
            print(_table(specs))
            print("\nOther amaranth-boards iCE40/ECP5 platforms: --board module:Class, e.g. "
                  "amaranth_boards.icestick:ICEStickPlatform")
        return {"boards": [b.to_dict() for b in specs]}

    b = get_board(args.board)
    plan = plan_clock(b, args.clock_mhz)
    if b.uart is not None:
        baud = args.baud or default_baud(plan.hz, b.max_baud)
        div, actual = baud_divisor(plan.hz, baud, max_baud=b.max_baud)
        link = {"baud": baud, "divisor": div, "actual_baud": actual}
    else:
        link = None
    if args.build_demo:
        return _build_demo(args, b, plan, link)
    info = {"board": b.to_dict(), "clock": plan.to_dict(), "link": link}
    if not args.json:
        d = b.to_dict()
        for k in ("name", "description", "platform", "family", "device", "package", "speed",
                  "osc_mhz", "clock_resource", "uart", "uart_bridge", "max_baud", "pass_led",
                  "fail_led", "synth", "pnr", "pack", "program_hint"):
            print(f"{k}: {d[k]}")
        print(f"capacity: {d['capacity']}")
        print(f"clock: {plan.mhz:g} MHz from {plan.source}" +
              (f" ({', '.join(f'{k}={v}' for k, v in plan.pll.params.items())}, "
               f"VCO {plan.pll.f_vco:g} MHz)" if plan.pll else ""))
        if link:
            print(f"link: {link['baud']} baud (divisor {link['divisor']})")
    return info


def _build_demo(args, b, plan, link):
    from ..boards.build import build_bitstream
    from ..boards.shell import make_top
    if not args.output:
        raise BnnhwError("--build-demo needs -o DIR")
    selftest = _demo_selftest_images() if args.selftest else None
    top = make_top(b, _demo_accelerator(), DEMO_FRAME, clock_mhz=args.clock_mhz,
                   baud=None if selftest else link and link["baud"], selftest=selftest)
    rep = build_bitstream(top, b, args.output, seed=args.seed)
    if not args.json:
        print(rep.table())
        if b.program_hint:
            print(f"program: {b.program_hint} (in {args.output})")
    d = rep.to_dict()
    return {"board": b.name, "device": b.device, "lut": rep.lut, "ff": rep.ff, "ebr": rep.ebr,
            "spram": rep.spram, "fmax_mhz": rep.fmax_mhz, "clock_mhz": rep.clock_mhz,
            "fps_link": d.get("fps_link"), "bitstream": rep.bitstream, "report": d}


def _link_test(args):
    import random
    from ..boards.host import DEFAULT_BAUD, Board
    from ..boards.standin import sum_mod
    if not args.port:
        raise BnnhwError("--link-test needs --port", "e.g. --port /dev/ttyUSB1")
    rng = random.Random(1)
    with Board(args.port, args.baud or DEFAULT_BAUD) as board:
        info = board.info()
        if (info.frame_len, info.in_width) != (DEMO_FRAME, 8):
            raise BnnhwError(f"the board runs an accelerator with {info.frame_len} elements of "
                             f"{info.in_width} bits, not the demo",
                             "program the --build-demo bitstream first")
        imgs = [[rng.randrange(256) for _ in range(DEMO_FRAME)] for _ in range(args.count)]
        got = board.classify(imgs)
        after = board.info()
    wrong = sum(g != sum_mod(i, DEMO_CLASSES) for g, i in zip(got, imgs))
    log(f"link test: {len(imgs)} images, {wrong} wrong, {board.resent} resent, board counters "
        f"ok={after.frames_ok} crc={after.crc_errors} dropped={after.dropped} "
        f"timeouts={after.timeouts}")
    if wrong:
        raise BnnhwError(f"link test: {wrong} of {len(imgs)} answers were wrong")
    return {"images": len(imgs), "wrong": wrong, "resent": board.resent,
            "crc_errors": after.crc_errors, "dropped": after.dropped, "timeouts": after.timeouts}
