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
        elif isinstance(op, ContractStage):   # R repeats of a Linear unit
            from ..schedule.contraction import stage_folds
            nf, kf = stage_folds(op, design.schedule(op))
            cycles = max(cycles, op.repeats * nf * kf, op.in_size)
        worst = max(worst, cycles)
    return (worst + 8) * design.graph.tokens


def tb_config(design: Design) -> dict:
    bound = cycles_per_frame_bound(design)
    ops = len(design.graph.ops)
    return {"top": design.top_name, "input": _format_json(design.top_input),
            "output": _format_json(design.top_output), "cycles_per_frame_bound": bound,
            # the first frame crosses every unit: its pipeline and one frame of buffering each
            "timeout_cycles": 1000 + ops * (2 * bound + 64)}


def emit_cocotb_tb(design: Design, out: Path) -> None:
    """Write OUT/tb/cocotb/: the cocotb test module and the design's einhls_tb.json."""
    tb = Path(out) / TB_DIR
    if tb.exists():
        shutil.rmtree(tb)
    tb.mkdir(parents=True)
    shutil.copyfile(resource_dir("testbench") / "cocotb" / f"{TEST_MODULE}.py", tb / f"{TEST_MODULE}.py")
    (tb / CONFIG).write_text(json.dumps(tb_config(design), indent=2, sort_keys=True) + "\n")
