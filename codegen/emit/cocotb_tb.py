"""cocotb test bench of the Verilog top: OUT/tb/cocotb/.

The test module itself is generic (``testbench/cocotb/test_einhls.py``, copied); what is specific
to the design goes into ``einhls_tb.json`` beside it: the top module's name, the input and output
stream formats and cycle bounds for the time-outs.  Nothing else is read, so the folder runs on
its own with ``codegen.verify.rtlsim`` (or any cocotb runner, given the environment variables the
test module documents).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..ir.butterfly import Butterfly
from ..ir.contraction import ContractStage
from ..ir.graph import Linear
from ..resources import resource_dir
from ..schedule.design import Design, StreamFormat, linear_folds

TB_DIR = "tb/cocotb"
TEST_MODULE = "test_einhls"
CONFIG = "einhls_tb.json"


def _format_json(fmt: StreamFormat) -> dict:
    return {"size": fmt.size, "bits": fmt.bits, "signed": fmt.signed, "lanes": fmt.lanes,
            "beats": fmt.beats, "tdata_bits": fmt.tdata_bits}


def cycles_per_frame_bound(design: Design) -> int:
    """A generous upper bound of one frame's cycles in any unit (for the test bench's time-outs)."""
    worst = 1
    for op in design.graph.ops:
        cycles = max(design.input_format(op).beats, design.output_format(op).beats)
        if isinstance(op, Linear):
            nf, kf = linear_folds(op, design.schedule(op))
            cycles = max(cycles, nf * kf)
        elif isinstance(op, Butterfly):      # one frame alone, gaps included
            from ..schedule.butterfly import timing
            cycles = max(cycles, timing(op, design.schedule(op).pe).single)
        elif isinstance(op, ContractStage):   # R repeats of a Linear unit (or a span fold)
            from ..schedule.contraction import stage_cycles
            cycles = max(cycles, stage_cycles(op, design.schedule(op)), op.in_size)
        elif op.kind in ("softmax", "layernorm", "gelu"):   # a token alone, all phases
            from ..schedule.nonlinear_cost import nonlinear_cost
            cycles = max(cycles, nonlinear_cost(op.unit, design.schedule(op).in_lanes, "DSP48E2").latency)
        worst = max(worst, cycles)
    from ..schedule.folding import token_counts
    return (worst + 8) * max(token_counts(design.graph).values())   # the most tokens any tensor has


def stream_map(design: Design) -> list[dict]:
    """Every wire of the Verilog top with its writer and reader (for naming a stalled stream)."""
    from .rtl import plan_rtl
    plan = plan_rtl(design)
    writer = {plan.input_wire: "s_axis"}
    reader = {plan.output_wire: "m_axis"}
    for st in plan.stages:
        for port in st.outputs:
            writer.update({w: st.instance for w in port.wires})
        for port in st.inputs:
            reader.update({w: st.instance for w in port.wires})
    return [{"wire": w.name, "from": writer.get(w.name, "?"), "to": reader.get(w.name, "?")} for w in plan.wires]


def stall_bound(design: Design) -> int:
    """Cycles without an output beat after which the test bench declares the design stalled: well
    beyond the schedule's latency of a frame and the slowest unit's cycles per frame."""
    return 4 * cycles_per_frame_bound(design) + 2 * sum(1 for _ in design.graph.ops) * 64 + 2000


def tb_config(design: Design) -> dict:
    bound = cycles_per_frame_bound(design)
    ops = len(design.graph.ops)
    return {"top": design.top_name, "input": _format_json(design.top_input),
            "output": _format_json(design.top_output), "cycles_per_frame_bound": bound,
            # the first frame crosses every unit: its pipeline and one frame of buffering each
            "timeout_cycles": 1000 + ops * (2 * bound + 64),
            "stall_cycles": stall_bound(design), "streams": stream_map(design)}


def emit_cocotb_tb(design: Design, out: Path) -> None:
    """Write OUT/tb/cocotb/: the cocotb test module and the design's einhls_tb.json."""
    tb = Path(out) / TB_DIR
    if tb.exists():
        shutil.rmtree(tb)
    tb.mkdir(parents=True)
    shutil.copyfile(resource_dir("testbench") / "cocotb" / f"{TEST_MODULE}.py", tb / f"{TEST_MODULE}.py")
    (tb / CONFIG).write_text(json.dumps(tb_config(design), indent=2, sort_keys=True) + "\n")
