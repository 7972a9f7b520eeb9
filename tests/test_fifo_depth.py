"""einhls_fifo at any depth: RTL simulation of powers of two and other depths, extremes and
back-pressure, and the scheduler's exact depths of long FIFOs.

A FIFO of DEPTH words holds DEPTH + 1 (its memory and the output register): with the output never
ready it takes exactly DEPTH + 1 words, then gives them back in order; with both sides always
ready it moves one word a cycle; under random gaps and back-pressure every word comes out once, in
order.  The words sent are the expectation (a FIFO only delays), compared word by word.  All
cases are instances of one wrapper built once with Verilator (testbench/cocotb/fifo_tb.py).
"""
from __future__ import annotations

import pytest

from codegen.emit.rtl import Param

from test_join_units import _verilator, _write_wrapper
from unit_rtlsim import build_and_simulate

TOP = "join_units_top"
# (name, DEPTH, WIDTH, URAM): powers of two (the path every design used before) and other depths,
# the smallest, odd, one past a power of two, a URAM-styled one, 1-bit and 64-bit words
CASES = [("pow2_2", 2, 8, 0), ("pow2_4", 4, 5, 0), ("pow2_64", 64, 8, 0), ("d3", 3, 8, 0), ("d5", 5, 1, 0),
         ("d7", 7, 8, 0), ("d12", 12, 16, 0), ("d100", 100, 8, 0), ("d129", 129, 9, 0), ("d6_uram", 6, 64, 1),
         ("d33_wide", 33, 64, 0)]


def _spec(index: int, name: str, depth: int, width: int, uram: int) -> dict:
    params = [Param("DEPTH", depth), Param("WIDTH", width)] + ([Param("URAM", 1)] if uram else [])
    return {"index": index, "name": name, "kind": "fifo", "module": "einhls_fifo", "params": params,
            "inputs": [{"width": width}], "outputs": [{"width": width}]}


@pytest.fixture(scope="module")
def fifo_results(tmp_path_factory) -> dict:
    _verilator()
    folder = tmp_path_factory.mktemp("fifo")
    specs = [_spec(i, *case) for i, case in enumerate(CASES)]
    sources = _write_wrapper(specs, folder / "rtl")
    config = {"seed": 11, "cases": [{"name": n, "depth": d, "width": w} for n, d, w, _ in CASES]}
    cases = build_and_simulate(sources, TOP, folder, config, test_module="fifo_tb", env_prefix="FIFO")
    return {case["name"]: case["phases"] for case in cases}


@pytest.mark.rtl
@pytest.mark.parametrize("name,depth,width,uram", CASES, ids=[c[0] for c in CASES])
def test_fifo_any_depth_rtl(fifo_results: dict, name: str, depth: int, width: int, uram: int) -> None:
    phases = fifo_results[name]
    fill, drain = phases["fill"], phases["drain"]
    # output never ready: exactly DEPTH + 1 words go in, then s_axis_tready stays low
    assert len(fill["sent"]) == depth + 1, (name, len(fill["sent"]))
    assert fill["got"] == []
    assert fill["in_cycles"] == list(range(fill["in_cycles"][0], fill["in_cycles"][0] + depth + 1))
    # they come back in order, all-zero and all-one words first, and nothing else
    assert drain["got"] == fill["sent"]
    assert fill["sent"][:2] == [0, (1 << width) - 1]
    full = phases["full_rate"]
    assert full["got"] == full["sent"] and len(full["sent"]) == 3 * depth + 10
    for cycles in (full["in_cycles"], full["out_cycles"]):
        assert cycles[-1] - cycles[0] == len(cycles) - 1, (name, "not one word a cycle")
    rand = phases["random"]
    assert rand["got"] == rand["sent"] and len(rand["sent"]) == 4 * depth + 50
    # the random phase really paused both sides
    assert rand["in_cycles"][-1] - rand["in_cycles"][0] > len(rand["in_cycles"]) - 1
    assert rand["out_cycles"][-1] - rand["out_cycles"][0] > len(rand["out_cycles"]) - 1


def test_scheduler_keeps_the_power_of_two_unless_it_takes_more_block_ram() -> None:
    from codegen.schedule.folding import fifo_depth

    # a sequence of 128 tokens of 384 8-bit beats, plus a token and two beats: 13 BRAM36 of 9 x 4096
    # at 49,538 words, 16 at 65,536
    assert fifo_depth(49_538, 8) == 49_538
    # 400 words of 8 bits: a RAMB18 either way (9 x 2048), so the power of two and its slack
    assert fifo_depth(400, 8) == 512
    # LUT RAM either way (at most 64 words)
    assert fifo_depth(40, 64) == 64
    # 5,000 words of 8 bits: 2 BRAM36 (9 x 4096 x 2) as 5,000 or as 8,192
    assert fifo_depth(5_000, 8) == 8_192
    assert fifo_depth(9_000, 8) == 9_000          # 3 BRAM36, 4 as 16,384


def test_packed_fifo_in_ultraram_keeps_its_exact_words_where_they_save_a_block() -> None:
    from codegen.schedule.fifo_memory import FifoShape

    # 8 lanes of 8 bits a word (384 features): 49,538 beats are 6,193 words, 2 URAM288 of 4,096
    # rows either way
    delay = FifoShape(384, 8, 1, 49_538)
    assert (delay.packed_lanes, delay.packed_depth, delay.uram) == (8, 8_192, 2)
    # 72,000 beats: 9,000 words, 3 URAM288 where 16,384 take 4
    longer = FifoShape(384, 8, 1, 72_000)
    assert (longer.packed_depth, longer.uram) == (9_000, 3)
