"""einhls_lanes' queue form (lane counts neither of which divides the other) in a design, against
the integer reference: two requantizers whose streams differ in lanes, so the top puts a queue
converter between them.  RTL sim back to back and with random pauses (frames meet in the queue:
a frame's first beats arrive while the last frame's tail is still in it), and the measured interval
the slower stream's beats a frame (the queue takes a beat while it has room, so it neither stalls
the producer nor starves the consumer)."""
from __future__ import annotations

from pathlib import Path

import pytest

from codegen.examples import manual_design
from codegen.ir.build import make_requant
from codegen.ir.graph import Graph
from codegen.ir.types import QType

from design_sim import assert_design_bit_exact

#: (frame size, lanes into the converter, lanes out of it)
QUEUES = [(64, 6, 10), (100, 17, 16), (13, 3, 4), (40, 10, 6)]


@pytest.mark.rtl
@pytest.mark.csim
@pytest.mark.parametrize("size, lanes_in, lanes_out", QUEUES)
def test_queue_converter_bit_exact_at_full_rate(size: int, lanes_in: int, lanes_out: int, tmp_path: Path) -> None:
    t_in, t_mid, t_out = QType(True, 8, 2.0 ** -4), QType(True, 8, 2.0 ** -3), QType(True, 8, 2.0 ** -2)
    first = make_requant("rq_a", "rq_a", t_in, t_mid, size, offset=3)
    second = make_requant("rq_b", "rq_b", t_mid, t_out, size, offset=-5)
    graph = Graph(name="lanes", input_type=t_in, input_size=size, ops=[first, second],
                  input_shape=(1, size), output_shape=(1, size))
    design = manual_design(graph, {"rq_a": (lanes_in, lanes_in, lanes_in, lanes_in),
                                   "rq_b": (lanes_out, lanes_out, lanes_out, lanes_out)})
    rtl = assert_design_bit_exact(design, tmp_path, 12, seed=size + lanes_in)
    top = (tmp_path / "rtl" / f"{design.top_name}.v").read_text()
    assert f"(einhls_lanes): rq_b input: {lanes_in} -> {lanes_out} lanes" in top   # the queue converter
    beats = max(-(-size // lanes_in), -(-size // lanes_out))
    assert beats <= rtl.measured["interval_cycles"] <= beats + 1, rtl.measured
