"""The `einhls` command (docs/interface.md): compile, verify, report, boards, demo, deploy.

Exit codes: 0 success, 1 a check ran and failed, 2 bad input or usage (one clear line, no
traceback, no output folder left behind).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from .errors import EinhlsError

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors are bad input: exit 2, one line
        print(f"einhls: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except for flags and options without one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or isinstance(action, argparse._HelpAction):
            return action.help or ""
        return super()._get_help_string(action)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is out of range: want an integer >= 0")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is out of range: want an integer >= 1")
    return value


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="einhls", description="Compile compressed neural networks from ONNX to verified FPGA accelerators.",
                formatter_class=_Help)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("compile", help="lower, schedule and emit a project folder", formatter_class=_Help,
                       description="Lower MODEL, fold it to the board and write the output folder OUT.")
    c.add_argument("model", type=Path, help="the ONNX file")
    c.add_argument("--board", default="pynq-z2", help="target board (`einhls boards` lists them)")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output folder to create")
    c.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    c.add_argument("--seed", type=int, default=0, help="seed of the stored test vectors (>= 0)")
    c.add_argument("--default-type", help="fixed-point type for a float model, e.g. fixed<16,6>")
    c.add_argument("--max-util", type=float, default=0.8,
                   help="fraction (0 < f <= 1) of the board's DSP/BRAM/LUT/FF the design may use")
    c.add_argument("--target-ii", type=int, metavar="CYCLES",
                   help="ask for this initiation interval, cycles per frame (default: the smallest that fits)")
    c.add_argument("--target-fps", type=float, metavar="FRAMES",
                   help="ask for at least this many frames per second with the least resources "
                        "(the slowest interval that meets it; instead of --target-ii)")
    c.add_argument("--clock-mhz", type=float, help="design clock in MHz (default: the board's)")
    c.add_argument("--sequence-length", type=int, metavar="L",
                   help="tokens per sequence, for a Transformer exported at another length (same scales)")
    c.add_argument("--contraction-objective", default="macs",
                   choices=("macs", "latency", "resources", "product"),
                   help="what the einsum contraction path search minimises")

    v = sub.add_parser("verify", help="run C-sim / RTL sim against the PyTorch integer reference",
                       formatter_class=_Help,
                       description="Check OUT against the PyTorch integer reference of its IR. Without a "
                                   "check flag, runs C-sim and RTL sim (--csim --rtlsim).")
    v.add_argument("out", type=Path, help="an output folder of `einhls compile`")
    v.add_argument("--csim", action="store_true", help="g++ C-simulation of the HLS C++")
    v.add_argument("--rtlsim", action="store_true", help="cocotb + Verilator simulation of the Verilog")
    v.add_argument("--pynq-sim", action="store_true", help="the PYNQ driver against the Verilated RTL")
    v.add_argument("--uart-sim", action="store_true",
                   help="ECP5 boards: the UART host driver against the simulated board top")
    v.add_argument("--vectors", type=_non_negative_int, default=64, help="random vectors on top of the 16 stored ones")
    v.add_argument("--seed", type=_non_negative_int, default=1, help="seed of the random vectors")

    r = sub.add_parser("report", help="per-layer and total estimates (and measurements)", formatter_class=_Help)
    r.add_argument("out", type=Path, help="an output folder of `einhls compile`")
    r.add_argument("--json", action="store_true", help="print report.json and the measurements as one JSON object")
    r.add_argument("--synth", action="store_true", help="run Yosys (synth_xilinx, or synth_ecp5 for ECP5 boards) on the RTL and record its counts")
    r.add_argument("--plot", type=Path, metavar="PNG",
                   help="also draw resources against the board, stage cycles against the interval, and MACs/cycle")

    b = sub.add_parser("boards", help="list the known boards", formatter_class=_Help)
    b.add_argument("--json", action="store_true", help="as JSON")

    d = sub.add_parser("demo", help="compile the built-in example model and verify it", formatter_class=_Help)
    d.add_argument("-o", "--output", type=Path, default=Path("demo_out"), metavar="OUT", help="output folder (replaced)")
    d.add_argument("--board", default="pynq-z2", help="target board")
    d.add_argument("--vectors", type=_non_negative_int, default=64, help="random vectors on top of the 16 stored ones")

    bit = sub.add_parser("bitstream", help="ECP5 boards: synth_ecp5, nextpnr-ecp5, ecppack (what `make bitstream` runs)",
                         formatter_class=_Help)
    bit.add_argument("out", type=Path, help="an output folder of `einhls compile` for an ECP5 board")
    bit.add_argument("--threads", type=_positive_int, default=2, help="nextpnr threads")
    bit.add_argument("--seed", type=_non_negative_int, default=1, help="nextpnr placer seed")
    bit.add_argument("--allow-timing-failure", action="store_true", help="pack a design that misses its clock")

    cmp = sub.add_parser("compress", help="choose per-layer sparsity, factorization and precision for a board",
                         formatter_class=_Help,
                         description="Search per-linear-layer compression (N:M, tensor-train, low rank, butterfly, "
                                     "4/8-bit weights) costed by the scheduler on the board, distill, write OUT.")
    cmp.add_argument("model", type=Path, help="an ONNX file with float weights, or a Hugging Face model folder")
    cmp.add_argument("--board", required=True, help="target board (`einhls boards` lists them)")
    cmp.add_argument("--data", type=Path, required=True, help=".npy samples (first axis), or text, one sample a line")
    cmp.add_argument("--target-fps", type=float, help="frames (sequences) per second the design must reach")
    cmp.add_argument("--min-accuracy", type=float, help="accuracy floor: output cosine to the original (default 0.99)")
    cmp.add_argument("--budget-s", type=float, default=300.0, help="wall-clock seconds for search and distillation")
    cmp.add_argument("--seed", type=_non_negative_int, default=0, help="seed of sampling, splits and training")
    cmp.add_argument("--ray-address", help="run on this Ray cluster (\"local\" starts one) instead of a process pool")
    cmp.add_argument("--workers", type=_positive_int, help="local processes (default: up to 4)")
    cmp.add_argument("--candidates", choices=("full", "small"), default="full", help="candidate set per layer")
    cmp.add_argument("--no-distill", action="store_true", help="skip the recovery by distillation")
    cmp.add_argument("--layers", nargs="+", metavar="PATTERN",
                     help="compress only these nn.Linear layers: names as in model.named_modules() or regular "
                          "expressions matching a whole name; the others stay float (a continued run takes the "
                          "filter of the run it continues)")
    cmp.add_argument("--resume", type=Path, metavar="DIR",
                     help="continue distilling the point a finished run in DIR reported, on the same --data, "
                          "for --budget-s more seconds (no new search); writes OUT")
    cmp.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output folder to create")
    cmp.add_argument("--force", action="store_true", help="overwrite an existing output folder")

    dep = sub.add_parser("deploy", help="pack bitstream, .hwh and driver for the board", formatter_class=_Help)
    dep.add_argument("out", type=Path, help="an output folder with a built bitstream")
    return p


def _compile(args) -> int:
    from .options import check_options
    from .schedule.boards import get_board
    from .schedule.capacity import check_model_capacity

    check_options(args, flag=lambda field: "--" + field.replace("_", "-"))
    # before the front end (and its torch import): a model far too large is refused in seconds
    check_model_capacity(args.model, get_board(args.board), args.max_util)
    from .project import CompileOptions, compile_model

    options = CompileOptions(board=args.board, seed=args.seed, default_type=args.default_type,
                             max_util=args.max_util, target_ii=args.target_ii, clock_mhz=args.clock_mhz,
                             target_fps=args.target_fps, contraction_objective=args.contraction_objective,
                             sequence_length=args.sequence_length)
    project = compile_model(args.model, args.output, options, force=args.force)
    t = project.report["totals"]
    print(f"compiled {args.model} for {args.board} into {args.output}: {len(project.graph.ops)} ops, "
          f"interval {t['ii']} cycles, latency {t['latency']} cycles, {t['dsp']} DSP, "
          f"{t['bram36']:g} BRAM36, {t.get('uram', 0)} URAM, {t['lut']} LUT (estimates)")
    return EXIT_OK


def _verify_project(out: Path, checks: tuple[str, ...], vectors: int, seed: int) -> int:
    from .project import Project
    from .verify.runner import verify

    project = Project(out)
    results = verify(project, checks, vectors, seed)
    failed = [r for r in results if not r.passed]
    if failed:
        print(f"verdict: FAILED ({', '.join(r.check for r in failed)})")
        return EXIT_MISMATCH
    print(f"verdict: bit-exact ({', '.join(r.check for r in results)})")
    return EXIT_OK


def _verify(args) -> int:
    checks = tuple(name for name, on in (("csim", args.csim), ("rtlsim", args.rtlsim),
                                         ("pynqsim", args.pynq_sim), ("uartsim", args.uart_sim)) if on) \
        or ("csim", "rtlsim")
    return _verify_project(args.out, checks, args.vectors, args.seed)


def _report(args) -> int:
    from .project import Project
    from .report import format_report, plot_report, sparsity_effect, synthesize

    project = Project(args.out)
    if args.synth:
        synthesize(project)
    if args.plot:
        plot_report(project, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps({**project.report, "measured": project.measured, "sparsity": sparsity_effect(project)},
                         sort_keys=True))
    else:
        print(format_report(project))
    return EXIT_OK


def _boards(args) -> int:
    from .schedule.boards import known_boards

    boards = known_boards()
    if args.json:
        print(json.dumps({k: b.to_json() for k, b in boards.items()}, sort_keys=True))
        return EXIT_OK
    print(f"{'board':<12} {'part':<22} {'LUT':>8} {'LUT kind':<8} {'FF':>8} {'BRAM36':>7} {'block RAM':<13} "
          f"{'URAM':>5} {'DSP':>6} {'DSP kind':<10} {'MHz':>5}  {'PS / host link':<18} flow")
    for b in boards.values():
        native = f"{b.bram_blocks:g} {b.bram_kind}" if b.bram_blocks else f"{b.bram36:g} {b.bram_kind}"
        link = f"UART {b.uart['baud']} Bd" if b.open_flow else b.ps
        flow = "open (yosys, nextpnr)" if b.open_flow else "vivado"
        print(f"{b.name:<12} {b.part:<22} {b.lut:>8} {b.lut_kind:<8} {b.ff:>8} {b.bram36:>7g} {native:<13} "
              f"{b.uram:>5} {b.dsp:>6} {b.dsp_kind:<10} {b.clock_mhz:>5g}  {link:<18} {flow}")
    return EXIT_OK


def _demo(args) -> int:
    import tempfile

    from .demo_model import build_demo_model
    from .project import CompileOptions, compile_model

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "einhls_demo_mlp.onnx"
        build_demo_model(model)
        print(f"built the demo model: {model.name} (quantized MLP, mixed precision, one 2:4-sparse layer)")
        compile_model(model, args.output, CompileOptions(board=args.board), force=True)
    from .project import Project
    from .report import format_report
    print(format_report(Project(args.output)))
    return _verify_project(args.output, ("csim", "rtlsim"), args.vectors, 1)


def _bitstream(args) -> int:
    from .verify.openflow import TimingFailure, build_bitstream

    try:
        info = build_bitstream(args.out, args.threads, args.seed, args.allow_timing_failure,
                               progress=lambda line: print(line, file=sys.stderr))
    except TimingFailure as exc:
        print(f"einhls: timing: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    print(f"open flow: Fmax {info['fmax_mhz']:.2f} MHz ({'meets' if info['met'] else 'MISSES'} "
          f"{info['target_mhz']:g} MHz), bitstream {args.out / 'deploy' / str(info['bitstream'])}; "
          f"synth {info['seconds']['synth']:.0f} s, place and route {info['seconds']['pnr']:.0f} s")
    return EXIT_OK


def _compress(args) -> int:
    from .compress import compress

    command = "einhls " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("einhls") else ""
    if args.resume is not None:
        from .compress.resume import resume
        result = resume(args.resume, args.data, args.output, args.budget_s, force=args.force, command=command,
                        model=args.model)
        continued = next(p for p in result.points if "before_continuing" in p.extra)
        print(f"continued: {continued.label}: accuracy {continued.accuracy:.4f} "
              f"(was {continued.extra['before_continuing']:.4f}); written to {args.output}")
        if result.chosen is None:   # as a first run that met no objective: the point is reported, not chosen
            print(f"no configuration met the objective; the front is in {args.output}/front.md")
            return EXIT_MISMATCH
        return EXIT_OK
    result = compress(args.model, args.data, args.board, args.output, target_fps=args.target_fps,
                      min_accuracy=args.min_accuracy, budget_s=args.budget_s, seed=args.seed,
                      ray_address=args.ray_address, workers=args.workers, level=args.candidates,
                      distill=not args.no_distill, force=args.force, command=command, layers=args.layers)
    c = result.chosen
    if c is None:
        print(f"no configuration met the objective; the front is in {args.output}/front.md")
        return EXIT_MISMATCH
    print(f"chosen: {c.label}: accuracy {c.accuracy:.4f}, {c.cost.cycles} cycles/token, {c.fps:.1f} frames/s, "
          f"{c.cost.dsp} DSP, {c.cost.bram36:g} BRAM36, {c.cost.uram} URAM, {c.cost.lut} LUT "
          f"({'fits' if c.cost.fits else 'does not fit'} {args.board}); written to {args.output}")
    return EXIT_OK


def _deploy(args) -> int:
    from .deploy import deploy
    print(deploy(args.out))
    return EXIT_OK


COMMANDS = {"compile": _compile, "verify": _verify, "report": _report, "boards": _boards,
            "demo": _demo, "deploy": _deploy, "compress": _compress, "bitstream": _bitstream}


_received: list[int] = []


def _interrupt(signum: int, _frame) -> None:
    """SIGTERM is handled like Ctrl-C: unwinding removes the half-written output folder and the
    tools' process groups (codegen.verify.tools.run_tool) instead of leaving them behind."""
    _received.append(signum)
    for other in (signal.SIGINT, signal.SIGTERM):   # a second signal must not cut the clean-up short
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
    try:
        return COMMANDS[args.command](args)
    except EinhlsError as exc:
        print(f"einhls: error: {' '.join(str(exc).split())}", file=sys.stderr)   # always one line
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        signum = _received[-1] if _received else signal.SIGINT
        print(f"einhls: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
