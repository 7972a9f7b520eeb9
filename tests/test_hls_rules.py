"""The static rules on the generated HLS C++ (codegen/emit/hls_rules.py), run by ``einhls compile``.

The kernel library as shipped passes every rule; each defect issue 15 found in it, put back into a
copy of the text or the plan, is refused with the rule's name and the place.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from codegen.cli import main
from codegen.emit.hls import plan_hls
from codegen.emit.hls_rules import check_kernel_text, check_plan
from codegen.resources import resource_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models.butterfly_cases import CASES  # noqa: E402
from models.einsum_models import tt_model  # noqa: E402
from test_hls_cycles import UNFLATTENED_READ  # noqa: E402

KERNELS = resource_dir("hls_kernels")


def kernel(name: str) -> str:
    return (KERNELS / name).read_text()


def rules(violations) -> set[str]:
    return {v.rule for v in violations}


@pytest.mark.parametrize("name", sorted(p.name for p in KERNELS.glob("*.h")))
def test_shipped_kernels_pass_every_rule(name):
    assert check_kernel_text(name, kernel(name)) == []


def test_false_dependence_on_the_butterfly_buffer_is_refused():
    text = kernel("einhls_butterfly.h").replace(
        "#pragma HLS DEPENDENCE variable=wk type=inter direction=RAW distance=RAW_DISTANCE true",
        "#pragma HLS DEPENDENCE variable=wk inter false")
    (v,) = check_kernel_text("einhls_butterfly.h", text)
    assert v.rule == "no-false-dependence" and v.place.startswith("einhls_butterfly.h:")


def test_repeats_that_do_not_flatten_are_refused():
    text = kernel("einhls_contract.h")
    start, end = text.index("template <class C, unsigned R>\nvoid contract_read("), text.index("// The MAC array")
    found = check_kernel_text("einhls_contract.h", text[:start] + UNFLATTENED_READ.lstrip() + "\n" + text[end:])
    assert "one-pipelined-loop" in rules(found) and "no-runtime-division" in rules(found)
    assert any("(contract_read)" in v.place for v in found)


def test_two_loops_in_sequence_in_a_process_are_refused():
    text = kernel("einhls_contract.h").replace(
        "        pos += P::OUT_LANES;\n    }\n}",
        "        pos += P::OUT_LANES;\n    }\ndrain:\n    for (unsigned i = 0; i < 4; i++) {\n"
        "#pragma HLS PIPELINE II=1\n        out.write(0);\n    }\n}")
    (v,) = check_kernel_text("einhls_contract.h", text)
    assert v.rule == "one-pipelined-loop" and "(permute_read)" in v.place and "2 top-level loops" in v.detail


def test_runtime_division_in_address_arithmetic_is_refused():
    text = kernel("einhls_contract.h").replace("row[l] = pos >> P::LOG_BANKS;", "row[l] = pos / P::BANKS;")
    (v,) = check_kernel_text("einhls_contract.h", text)
    assert v.rule == "no-runtime-division" and "(permute_write)" in v.place


def test_division_in_the_linear_read_and_write_is_refused():
    """The Linear unit's beat-to-register addresses once were e / SIMD, e % SIMD (and e / PE, e % PE):
    a divider per lane.  Put back, the rule names the process."""
    text = kernel("einhls_linear.h")
    read = text.replace("x[kf + R::fold(j, l)][R::group(j, l)][R::member(j, l)] =",
                        "x[(b * C::IN_LANES + l) / C::SIMD][(b * C::IN_LANES + l) % C::SIMD / C::GROUP][R::member(j, l)] =")
    write = text.replace("y[nf + R::fold(j, l)][R::pos(j, l)]", "y[(b * C::OUT_LANES + l) / C::PE][R::pos(j, l)]")
    assert read != text and write != text
    found = check_kernel_text("einhls_linear.h", read)
    assert rules(found) == {"no-runtime-division"} and all("(linear_read)" in v.place for v in found), found
    (v,) = check_kernel_text("einhls_linear.h", write)
    assert v.rule == "no-runtime-division" and "(linear_write)" in v.place


def test_every_kernel_is_held_to_the_division_rule():
    from codegen.emit.hls_rules import DIVISION_FREE_KERNELS

    assert sorted(p.name for p in KERNELS.glob("*.h")) == sorted(DIVISION_FREE_KERNELS)


def test_division_in_the_repack_is_refused():
    """The re-pack once chose each bank's lane by k % IN_LANES and its phase by k / IN_LANES."""
    text = kernel("einhls_stream.h")
    broken = text.replace("frame[j * IN_LANES + l][row]", "frame[(b * IN_LANES + l) % PHASES][row]")
    assert broken != text
    (v,) = check_kernel_text("einhls_stream.h", broken)
    assert v.rule == "no-runtime-division" and "(repack_write)" in v.place


def test_inner_loop_without_unroll_is_refused():
    text = kernel("einhls_butterfly.h").replace(
        "        for (unsigned k = 0; k < C::BANKS; k++) {\n#pragma HLS UNROLL\n            const typename C::in_t lane0",
        "        for (unsigned k = 0; k < C::BANKS; k++) {\n            const typename C::in_t lane0")
    (v,) = check_kernel_text("einhls_butterfly.h", text)
    assert v.rule == "one-pipelined-loop" and "(butterfly_load)" in v.place and "not unrolled" in v.detail


def test_a_loop_in_a_dataflow_region_is_refused():
    text = kernel("einhls_stream.h").replace(
        "    repack_write<SIZE, BITS, IN_LANES, OUT_LANES>(in, frame);",
        "    for (unsigned i = 0; i < B::ROWS; i++) frame[0][i] = 0;\n"
        "    repack_write<SIZE, BITS, IN_LANES, OUT_LANES>(in, frame);")
    assert text != kernel("einhls_stream.h")
    (v,) = check_kernel_text("einhls_stream.h", text)
    assert v.rule == "dataflow-calls-only" and "(repack)" in v.place


@pytest.fixture(scope="module")
def tt512_plan(tmp_path_factory):
    from codegen.project import CompileOptions, compile_model

    root = tmp_path_factory.mktemp("rules")
    model = root / "tt.onnx"
    model.write_bytes(tt_model([8, 8, 8], [8, 8, 8], [8, 8]).SerializeToString())
    project = compile_model(model, root / "out", CompileOptions(board="zcu104"), progress=lambda *_: None)
    return plan_hls(project.design)


def test_plan_of_the_tt512_layer_passes(tt512_plan):
    assert check_plan(tt512_plan) == []


def test_permutation_buffer_without_its_skew_is_refused(tt512_plan):
    from codegen.emit.contraction import PermuteUnit

    plan = dataclasses.replace(tt512_plan, stages=list(tt512_plan.stages))
    index = next(i for i, st in enumerate(plan.stages) if isinstance(st.unit, PermuteUnit) and st.unit.skew)
    plan.stages[index] = dataclasses.replace(plan.stages[index], unit=dataclasses.replace(plan.stages[index].unit, skew=0))
    found = check_plan(plan)
    assert rules(found) == {"conflict-free-banks"}, found


def test_lanes_that_do_not_divide_simd_are_refused(tt512_plan):
    from codegen.emit.contraction import ContractUnit

    plan = dataclasses.replace(tt512_plan, stages=list(tt512_plan.stages))
    index = next(i for i, st in enumerate(plan.stages) if isinstance(st.unit, ContractUnit) and st.unit.linear.simd > 2)
    unit = plan.stages[index].unit
    bad = dataclasses.replace(unit, linear=dataclasses.replace(unit.linear, in_lanes=unit.linear.simd - 1))
    plan.stages[index] = dataclasses.replace(plan.stages[index], unit=bad)
    assert "lanes-divide" in rules(check_plan(plan))


def test_butterfly_without_its_gaps_is_refused():
    """A stage group that holds stages with gaps between them (the Verilog's P, one group): without
    the gaps stage s + 1 reads a result 1 cycle after its write."""
    from codegen.emit.butterfly import StageGroup, hls_unit
    from codegen.emit.hls import CType
    from codegen.schedule.butterfly import timing

    design = CASES["n8_p4_int4"]()
    plan = plan_hls(design)
    assert check_plan(plan) == []
    (stage,) = [st for st in plan.stages if st.unit.kind == "butterfly"]
    op = design.graph.ops[0]
    s = design.schedule(op)
    ct = timing(op, s.pe).stage_cycles
    unit = stage.unit
    stage.unit = hls_unit(unit.index, op, s, unit.ns, unit.header, CType,
                          (s.pe, [StageGroup(0, op.stages, op.stages * ct + sum(timing(op, s.pe).gaps))]))
    assert check_plan(plan) == []
    roms = stage.unit.groups[0]
    bad = dataclasses.replace(roms, gaps=[0] * op.stages, group=StageGroup(0, op.stages, op.stages * ct))
    stage.unit = dataclasses.replace(stage.unit, groups=[bad])
    (v,) = check_plan(plan)
    assert v.rule == "butterfly-raw-distance" and "1 cycles after its write" in v.detail


def test_compile_refuses_a_broken_kernel_with_exit_2_and_no_output(tmp_path, monkeypatch, capsys):
    import codegen.emit.hls as hls

    broken = tmp_path / "kernels"
    broken.mkdir()
    for path in KERNELS.glob("*.h"):
        (broken / path.name).write_text(path.read_text())
    butterfly = broken / "einhls_butterfly.h"
    butterfly.write_text(butterfly.read_text().replace(
        "distance=RAW_DISTANCE true", "distance=RAW_DISTANCE false"))
    real = hls.resource_dir
    monkeypatch.setattr(hls, "resource_dir", lambda name: broken if name == "hls_kernels" else real(name))
    model = tmp_path / "tt.onnx"
    model.write_bytes(tt_model([2, 3], [3, 2], [2], seed=1).SerializeToString())
    out = tmp_path / "OUT"
    assert main(["compile", str(model), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "einhls: error: HLS rule no-false-dependence broken at einhls_butterfly.h:" in err, err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".OUT.*"))
