"""The output folder: compile a model into it, and load it back.

``compile_model`` runs the pipeline front end -> IR passes -> schedule -> emit and writes OUT
atomically: everything is produced in a temporary sibling folder that is renamed into place only
when every step succeeded, so a failure never leaves a half-written OUT behind.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .errors import EinhlsError
from .options import check_options
from .ir.graph import Graph
from .ir.reference import random_inputs, run_reference
from .schedule.boards import get_board
from .schedule.cost import OpCost
from .schedule.design import Design, OpSchedule
from .schedule.butterfly import report_fields as butterfly_report_fields
from .schedule.folding import fold
from .threads import run_single_threaded

STORED_VECTORS = 16


@dataclass
class CompileOptions:
    board: str = "pynq-z2"
    seed: int = 0
    default_type: str | None = None
    max_util: float = 0.8
    target_ii: int | None = None
    target_fps: float | None = None   # frames per second: the slowest interval that reaches it
    clock_mhz: float | None = None
    contraction_objective: str = "macs"   # path search objective: macs | latency | resources | product
    # cap on the FIFO depths the schedule computes where paths reconverge (for experiments: a cap
    # below the computed depth can deadlock the design, which verify then reports as a stall)
    fifo_depth_limit: int | None = None
    # tokens per sequence when it differs from the exported model's (attention models): the graph is
    # rebuilt for this length with the scales of the export (codegen/passes/sequence.py)
    sequence_length: int | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)


def read_vectors(path: Path) -> np.ndarray:
    rows = [list(map(int, line.split())) for line in path.read_text().splitlines() if line.strip()]
    return np.asarray(rows, dtype=np.int64)


def _save_arrays(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for key, arr in sorted(arrays.items()):
        np.save(folder / f"{key}.npy", np.ascontiguousarray(arr), allow_pickle=False)


@run_single_threaded
def lower(model_path: Path, options: CompileOptions) -> Graph:
    """Front end and IR passes: ONNX file -> optimised IR graph."""
    from .frontend import load_graph
    from .frontend.passes import fuse_relu
    from .passes.graph import insert_forks

    default = None
    if options.default_type:
        from .ir.types import parse_fixed
        try:
            default = parse_fixed(options.default_type)
        except ValueError as exc:
            raise EinhlsError(str(exc)) from None
    graph = load_graph(model_path, default_type=default)
    if options.sequence_length is not None and options.sequence_length != graph.tokens:
        from .passes.sequence import with_tokens
        if graph.tokens == 1:
            raise EinhlsError("--sequence-length applies to models with a token axis ([1, L, C] input and "
                              "output); this model has one vector per frame")
        try:
            graph = with_tokens(graph, options.sequence_length)
        except ValueError as exc:
            raise EinhlsError(f"cannot change the sequence length: {exc}") from None
    for ir_pass in (fuse_relu,):
        graph = ir_pass(graph)
    graph = expand_for_board(graph, options)
    graph = insert_forks(graph)
    # attention layers: one delayed copy of the layer input for the queries and the residual
    from .passes.input_delay import share_input_delay
    graph = share_input_delay(graph)
    if any(op.kind == "window" for op in graph.ops):   # factor chains of a conv with nothing between
        from .passes.conv_chain import choose_conv_chains
        board = get_board(options.board)
        target = options.target_ii
        if target is None and options.target_fps is not None:
            target = interval_for_fps(options.target_fps, graph.tokens, options.clock_mhz or board.clock_mhz)[0]
        graph = choose_conv_chains(graph, board, options.max_util, target)
    graph.check()
    return graph


def expand_for_board(graph: Graph, options: CompileOptions) -> Graph:
    """Contractions -> pipelines of stages, paths chosen for the options' objective and board."""
    from .ir.contraction import Contraction
    from .passes.contraction import expand_contractions

    if not any(isinstance(op, Contraction) for op in graph.ops):
        return graph
    board = get_board(options.board)
    # self-check: each contraction's stages equal it (on its own inputs; running the whole graph's
    # reference twice took about 10 s on a BERT-base-sized encoder)
    return expand_contractions(graph, options.contraction_objective, self_check=True, multipliers=board.dsp)


def contraction_fields(op) -> dict:
    """Report fields of a contraction stage or permutation (empty for other ops)."""
    from .ir.contraction import ContractStage, Permute
    if isinstance(op, ContractStage):
        return {"contraction": op.contraction, "step": op.step, "repeats": op.repeats, "k": op.k, "n": op.n}
    if isinstance(op, Permute):
        return {"contraction": op.contraction, "step": "permute " + str(op.transposition.to_json())}
    return {}


def contraction_summary(graph: Graph, costs: dict[str, OpCost]) -> list[dict]:
    """Per fused contraction: its stages with MACs, cycles, multipliers and buffer bits, and totals."""
    from .ir.contraction import ContractStage, Permute
    groups: dict[str, list] = {}
    for op in graph.ops:
        if isinstance(op, (ContractStage, Permute)):
            groups.setdefault(op.contraction, []).append(op)
    summary = []
    for name, ops in groups.items():
        stages = [{"name": op.name, "kind": op.kind, "step": contraction_fields(op)["step"],
                   "macs": costs[op.name].macs, "cycles": costs[op.name].cycles, "ii": costs[op.name].ii,
                   "multipliers": costs[op.name].multipliers, "dsp": costs[op.name].dsp,
                   "buffer_bits": costs[op.name].buffer_bits, "weight_bits": costs[op.name].weight_bits}
                  for op in ops]
        summary.append({"contraction": name, "stages": stages,
                        "macs": sum(st["macs"] for st in stages),
                        "cycles": max(st["ii"] for st in stages),
                        "multipliers": sum(st["multipliers"] for st in stages),
                        "buffer_bits": sum(st["buffer_bits"] for st in stages),
                        "weight_bits": sum(st["weight_bits"] for st in stages)})
    return summary


def build_report(design: Design, costs: dict[str, OpCost], totals: dict, notes: list[str]) -> dict:
    board = design.board
    layers = []
    for op in design.graph.ops:
        s = design.schedules[op.name]
        layers.append({
            "name": op.name, "source": op.source, "kind": op.kind,
            "in_size": op.in_size, "out_size": op.out_size,
            "in_type": op.in_type.describe(), "out_type": op.out_type.describe(),
            "weight_type": op.weight_type.describe() if hasattr(op, "weight_type") else None,
            "acc_bits": op.acc_type.bits if hasattr(op, "acc_type") else None,
            "sparsity": "{}:{}".format(*op.sparsity) if getattr(op, "sparsity", None) else None,
            **contraction_fields(op), **butterfly_report_fields(op, s),
            "simd": s.simd, "pe": s.pe, "in_lanes": s.in_lanes, "out_lanes": s.out_lanes,
            **({"token_pack": s.token_pack} if s.token_pack != 1 else {}),
            **({"pe_pack": s.pe_pack} if s.pe_pack != 1 else {}),
            **({"overlap": s.overlap} if s.overlap else {}),   # a token mean with two banks of sums
            **({"span": s.span} if s.span else {}),            # a contraction stage's span fold
            **costs[op.name].to_json()})
    utilisation = {key: round(totals[key] / limit, 4) if limit else 0.0 for key, limit in
                   (("dsp", board.dsp), ("bram36", board.bram36), ("uram", board.uram),
                    ("lut", board.lut), ("ff", board.ff))}
    return {"board": board.name, "part": board.part, "clock_mhz": design.clock_mhz,
            "layers": layers, "contractions": contraction_summary(design.graph, costs), "totals": totals, "utilisation": utilisation,
            "throughput_fps": round(design.clock_mhz * 1e6 / (totals["ii"] * design.graph.tokens), 1),
            "tokens": design.graph.tokens,
            "fifos": [{"op": op, "input": i, "tensor": design.graph.op(op).inputs[i], "depth": d,
                       "uram_packed_lanes": design.uram_fifos.get((op, i), 0),
                       "lutram": (op, i) in design.lutram_fifos}
                      for (op, i), d in sorted(design.fifo_depths.items())],
            "buffer_sequences": {op.name: design.buffer_sequences.get(op.name, 2)
                                 for op in design.graph.ops if op.kind == "actmatmul"},
            "uram_buffers": sorted(design.uram_buffers),
            "uram_stage_buffers": sorted(design.uram_stage_buffers),
            "lutram_units": sorted(design.lutram_units),
            "latency_us": round(totals["latency"] / design.clock_mhz, 3), "notes": notes}


def interval_for_fps(fps: float, tokens: int, clock_mhz: float) -> tuple[int, str]:
    """The slowest interval (cycles per token) that still gives ``fps`` frames per second, and
    that reasoning in words; a rate beyond one token per cycle is refused."""
    cycles = math.floor(clock_mhz * 1e6 / (fps * max(tokens, 1)))
    if cycles < 1:
        raise EinhlsError(f"--target-fps {fps:g} is out of reach: {tokens} token(s) per frame at "
                          f"{clock_mhz:g} MHz allow at most {clock_mhz * 1e6 / max(tokens, 1):.6g} frames/s")
    return cycles, f"an interval of at most {cycles} cycles per token at {clock_mhz:g} MHz"


def compile_model(model: str | Path, out: str | Path, options: CompileOptions | None = None,
                  force: bool = False, progress=print) -> "Project":
    """Lower, schedule and emit MODEL into the folder OUT (layout: docs/interface.md)."""
    options = options or CompileOptions()
    check_options(options)
    model, out = Path(model), Path(out)
    if out.exists() and not force:
        raise EinhlsError(f"output folder {out} exists; pass --force to overwrite it")
    if not model.exists():
        raise EinhlsError(f"model file {model} does not exist")
    if not model.is_file():
        raise EinhlsError(f"model file {model} is not a regular file (a folder?)")
    board = get_board(options.board)
    from .schedule.capacity import check_model_capacity
    check_model_capacity(model, board, options.max_util)
    progress(f"[1/4] lowering {model.name}")
    graph = lower(model, options)
    source = {"file": model.name, "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}
    return _build(graph, out, options, source, progress)


def compile_graph(graph: Graph, out: str | Path, options: CompileOptions | None = None, force: bool = False,
                  progress=print) -> "Project":
    """Schedule and emit an IR graph built in Python (unit tests of single ops, the Python API)
    into the folder OUT, as compile_model does after lowering."""
    options = options or CompileOptions()
    check_options(options)
    out = Path(out)
    if out.exists() and not force:
        raise EinhlsError(f"output folder {out} exists; pass --force to overwrite it")
    graph.check()
    text = json.dumps(graph.to_json(), sort_keys=True).encode()
    source = {"file": None, "sha256": hashlib.sha256(text).hexdigest()}
    return _build(graph, out, options, source, progress)


@run_single_threaded
def _build(graph: Graph, out: Path, options: CompileOptions, source: dict, progress) -> "Project":
    from .emit.hls import emit_csim_testbench, emit_csim_vectors, emit_hls
    from .emit.rtl import emit_rtl
    from .emit.cocotb_tb import emit_cocotb_tb
    from .emit.driver import emit_driver
    from .emit.vivado import emit_vivado

    board = get_board(options.board)
    progress(f"[2/4] scheduling {len(graph.ops)} ops for {board.name}")
    target_ii, fps_note = options.target_ii, None
    if options.target_fps is not None:
        target_ii, fps_note = interval_for_fps(options.target_fps, graph.tokens,
                                               options.clock_mhz or board.clock_mhz)
    try:
        result = fold(graph, board, options.clock_mhz, options.max_util, target_ii)
    except EinhlsError as exc:
        if fps_note is None:
            raise
        raise EinhlsError(f"--target-fps {options.target_fps:g}: {fps_note}, but {exc}") from None
    if fps_note is not None:
        result.notes.append(f"{options.target_fps:g} frames/s asked: {fps_note}; the least resources "
                            f"that meet it")
    design = result.design
    if options.fifo_depth_limit is not None:
        if options.fifo_depth_limit < 2:
            raise EinhlsError(f"fifo depth limit {options.fifo_depth_limit} must be at least 2")
        capped = {k: min(v, options.fifo_depth_limit) for k, v in design.fifo_depths.items()}
        if capped != design.fifo_depths:
            result.notes.append(f"FIFO depths capped at {options.fifo_depth_limit} beats as asked "
                                "(below the computed depths: the design may stall)")
        design.fifo_depths = capped

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if board.open_flow:
            progress("[3/4] emitting HLS C++, Verilog, testbenches, the open-flow board top and the UART driver")
        else:
            progress("[3/4] emitting HLS C++, Verilog, testbenches, Vivado scripts and the PYNQ driver")
        emit_hls(design, staging)
        emit_rtl(design, staging)
        emit_csim_testbench(design, staging)
        emit_cocotb_tb(design, staging)
        if board.open_flow:   # Lattice ECP5: Yosys + nextpnr, a UART host link
            from .emit.ecp5 import emit_open_flow
            emit_open_flow(design, staging)
        else:
            emit_vivado(design, staging)
            emit_driver(design, staging)
        progress(f"[4/4] computing {STORED_VECTORS} reference vectors")
        inputs = random_inputs(graph, STORED_VECTORS, options.seed)
        emit_csim_vectors(staging, inputs, run_reference(graph, inputs))
        _save_arrays(staging / "ir", graph.arrays())
        meta = {
            "tool": "einhls", "version": __version__,
            "input": source,
            "options": options.to_json(), "board": board.to_json(), "clock_mhz": design.clock_mhz,
            "top": design.top_name,
            "interface": {"input": design.top_input.to_json(), "output": design.top_output.to_json(),
                          "input_type": graph.input_type.to_json(),
                          "output_type": graph.output_type.to_json()},
            "ir": graph.to_json(),
            "schedule": [s.__dict__ for s in design.schedules.values()],
            "fifo_depths": [{"op": op, "input": i, "depth": d} for (op, i), d in sorted(design.fifo_depths.items())],
            "rom_kinds": dict(sorted(design.rom_kinds.items())),
        }
        (staging / "einhls.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        report = build_report(design, result.costs, result.totals, result.notes)
        (staging / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Project(out)


class Project:
    """A compiled output folder: its graph, design, vectors and reports."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / "einhls.json"
        if not meta_path.is_file():
            raise EinhlsError(f"{self.path} is not an einhls output folder (no einhls.json)")
        self.meta = json.loads(meta_path.read_text())
        arrays = {p.stem: np.load(p, allow_pickle=False) for p in sorted((self.path / "ir").glob("*.npy"))}
        self.graph = Graph.from_json(self.meta["ir"], arrays)
        board = get_board(self.meta["board"]["name"])
        schedules = {d["op"]: OpSchedule(**d) for d in self.meta["schedule"]}
        self.design = Design(self.graph, schedules, board, self.meta["clock_mhz"], self.meta["top"],
                             rom_kinds=self.meta.get("rom_kinds", {}))

    @property
    def report(self) -> dict:
        return json.loads((self.path / "report.json").read_text())

    @property
    def measured(self) -> dict:
        path = self.path / "measured.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def save_measured(self, updates: dict) -> None:
        data = self.measured
        data.update(updates)
        (self.path / "measured.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        from .emit.hls import CSIM_DIR, CSIM_EXPECTED, CSIM_INPUTS
        vec = self.path / CSIM_DIR
        return read_vectors(vec / CSIM_INPUTS), read_vectors(vec / CSIM_EXPECTED)

    def predict_codes(self, codes: np.ndarray, target: str = "reference") -> np.ndarray:
        """Integer codes in, integer codes out, on the reference or a simulated design."""
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, self.graph.tokens * self.graph.input_size)
        expected = run_reference(self.graph, codes)
        if target == "reference":
            return expected
        from .verify.runner import run_check
        result = run_check(self, target, codes, expected)
        if result.error:
            raise RuntimeError(result.line())
        return result.outputs

    def predict(self, x: np.ndarray, target: str = "reference") -> np.ndarray:
        """Real-valued input (quantized with the model's input quantizer) -> real-valued output."""
        from .ir.reference import channels_first_output, dequantize_output, quantize_input
        codes = self.predict_codes(quantize_input(self.graph, x), target)
        out = dequantize_output(self.graph, codes) if self.graph.output_is_float else \
            channels_first_output(self.graph, codes)
        return out.reshape((-1,) + tuple(self.graph.output_shape[1:]))
