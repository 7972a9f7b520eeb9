"""The cycle check of the HLS design in C-sim (hls_kernels/einhls_csim.h, codegen/verify/csim.py).

The C-sim build counts, per process and per frame, the iterations of every pipelined loop; at
II = 1 that is the process's cycles per frame, and the slowest process is the design's interval.
It must not exceed the schedule's estimate (what the RTL is measured to meet) by more than 10%:
a process that drains between repeats, a loop nest that does not flatten or an extra pass over
the frame shows up here even though the values stay bit-exact.
"""
from __future__ import annotations

import shutil

import pytest

from codegen.cli import main
from codegen.demo_model import build_demo_model
from codegen.project import CompileOptions, compile_model
from codegen.verify.csim import ap_types_dir
from codegen.verify.runner import verify

from models.einsum_models import sweep_model, tt_model

pytestmark = [pytest.mark.csim,
              pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed"),
              pytest.mark.skipif(ap_types_dir() is None, reason="ap_types headers (hls4ml) not installed")]

SLACK = 1.10
VECTORS = 8


def hls_cycles_within_estimate(project, result) -> tuple[bool, str]:
    """(HLS interval at II=1 <= estimate * 1.1, explanation)."""
    m = result.measured
    estimate = project.report["totals"]["ii"]
    ok = m["interval_cycles_ii1"] <= estimate * SLACK
    return ok, (f"HLS {m['interval_cycles_ii1']} cycles per frame at II=1 (slowest {m['slowest_process']}) "
                f"against the estimate {estimate}")


MODELS = {
    "tt512_zcu104": (lambda: tt_model([8, 8, 8], [8, 8, 8], [8, 8]), {"board": "zcu104"}),
    "sweep_parallel": (sweep_model, {"board": "pynq-z2"}),
    "sweep_serial": (sweep_model, {"board": "pynq-z2", "target_ii": 2000}),
}


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("hls_cycles")
    built = {}
    for name, (model, options) in MODELS.items():
        path = root / f"{name}.onnx"
        path.write_bytes(model().SerializeToString())
        built[name] = compile_model(path, root / name, CompileOptions(**options), progress=lambda *_: None)
    demo = root / "demo.onnx"
    build_demo_model(demo)
    built["demo"] = compile_model(demo, root / "demo", CompileOptions(board="pynq-z2"), progress=lambda *_: None)
    return built


@pytest.mark.parametrize("name", [*MODELS, "demo"])
def test_hls_cycles_per_frame_meet_the_estimate(projects, name):
    project = projects[name]
    (result,) = verify(project, ("csim",), VECTORS, seed=2, progress=lambda *_: None)
    assert result.passed, result.line()
    frames = result.measured["frames"]
    processes = result.measured["processes"]
    assert processes and all(p["calls"] == frames for p in processes), processes   # one call per frame
    ok, why = hls_cycles_within_estimate(project, result)
    assert ok, why


def test_verify_prints_hls_cycles_beside_the_estimate(projects, capsys):
    project = projects["demo"]
    assert main(["verify", str(project.path), "--csim", "--vectors", "4"]) == 0
    out = capsys.readouterr().out
    estimate = project.report["totals"]["ii"]
    assert "csim: HLS design " in out and "cycles per frame at II=1" in out, out
    assert f"schedule estimate {estimate}" in out and "RTL measured" in out, out
    assert project.measured["csim"]["interval_cycles_ii1"] > 0


# The repeats loop this project once had in contract_read: per repeat a call (linear_read: beats,
# then a padding loop) and a second loop, in sequence: neither flattens nor rewinds.
UNFLATTENED_READ = '''
template <class C, unsigned R>
void contract_read(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in, hls::stream<typename XWord<C>::t>& xs) {
    EINHLS_CSIM_PROCESS();
repeats:
    for (unsigned r = 0; r < R; r++) {
        typename C::in_t x[C::KF][C::GROUPS][C::GROUP];
    read_beats:
        for (unsigned b = 0; b < C::IN_BEATS; b++) {
#pragma HLS PIPELINE II=1
            EINHLS_CSIM_COUNT();
            const ap_uint<C::IN_LANES * C::IN_BITS> word = in.read();
            for (unsigned l = 0; l < C::IN_LANES; l++) {
                const unsigned e = b * C::IN_LANES + l;
                x[e / C::SIMD][e % C::SIMD / C::GROUP][e % C::GROUP] = get_lane<typename C::in_t, C::IN_BITS>(word, l);
            }
        }
    words:
        for (unsigned kf = 0; kf < C::KF; kf++) {
#pragma HLS PIPELINE II=1
            EINHLS_CSIM_COUNT();
            typename XWord<C>::t word = 0;
            for (unsigned s = 0; s < C::SIMD; s++) set_lane<C::IN_BITS>(word, s, x[kf][s / C::GROUP][s % C::GROUP]);
            xs.write(word);
        }
    }
}
'''


def test_the_check_catches_repeats_that_do_not_flatten(projects, tmp_path):
    """The same tensor-train design with the old contract_read: still bit-exact, but twice the
    cycles per frame; the check must say so."""
    import re

    from codegen.project import Project

    copy = tmp_path / "tt512"
    shutil.copytree(projects["tt512_zcu104"].path, copy)
    header = copy / "hls" / "einhls_contract.h"
    text = header.read_text()
    start = text.index("template <class C, unsigned R>\nvoid contract_read(")
    end = text.index("// The MAC array")
    header.write_text(text[:start] + UNFLATTENED_READ.lstrip() + "\n" + text[end:])
    project = Project(copy)
    (result,) = verify(project, ("csim",), 2, seed=2, progress=lambda *_: None)
    assert result.passed, result.line()
    ok, why = hls_cycles_within_estimate(project, result)
    assert not ok, why
    assert re.search(r"slowest contract_read", why), why
