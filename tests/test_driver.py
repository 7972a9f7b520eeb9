"""The generated PYNQ driver, on the host: packing, numbers, batching, timeouts, deploy tarball.

``pynq`` is replaced by a small fake whose DMA feeds a model of the accelerator built from
einhls' own StreamFormat and the PyTorch integer reference, so the driver's byte layout,
per-frame S2MM offsets, chunking and quantization are checked against code it does not share.
(The driver against the real RTL, through cocotbpynq, is tests/test_pynqsim.py.)
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest

from codegen.deploy import deploy
from codegen.emit.driver import DRIVER_DIR, INTERFACE_FILE, MODULES, driver_interface, emit_driver
from codegen.emit.vivado import DEPLOY_DIR, dma_frame
from codegen.errors import EinhlsError
from codegen.examples import chain_graph, linear_graph, manual_design
from codegen.ir.reference import dequantize_output, quantize, quantize_input, random_inputs, run_reference
from codegen.ir.types import QType
from codegen.schedule.design import Design, StreamFormat


def chain_design() -> Design:
    return manual_design(chain_graph(), {"relu_in": (4, 4, 4, 4), "rq_in": (4, 4, 4, 4),
                                         "fc1": (8, 4, 4, 2), "fc2": (4, 2, 5, 3)})


def odd_design() -> Design:
    """5-bit outputs, 3 per beat: 16-bit beats and a padded last DMA word."""
    g = linear_graph(11, 7, QType(False, 6, 2.0 ** -4, 3), 4, QType(True, 5, 0.37, -2), seed=3)
    return manual_design(g, {"layer0": (4, 2, 2, 3)})


_LOADED = 0


def load_driver(out: Path, monkeypatch, fake_pynq: types.ModuleType | None) -> types.ModuleType:
    """OUT/driver as a package under a fresh name, with ``pynq`` replaced by the fake."""
    global _LOADED
    _LOADED += 1
    name = f"einhls_driver_under_test_{_LOADED}"
    if fake_pynq is not None:
        monkeypatch.setitem(sys.modules, "pynq", fake_pynq)
    folder = out / DRIVER_DIR
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


# --- a fake pynq: DMA channels in front of a model of the accelerator -----------------------------

class Accelerator:
    """Consumes DMA input bytes, produces DMA output bytes (frames padded to 32-bit words)."""

    def __init__(self, design: Design, mode: str = "ok") -> None:
        self.design, self.mode = design, mode
        self.fin, self.fout = dma_frame(design.top_input), dma_frame(design.top_output)
        self.pending = b""

    def feed(self, data: bytes) -> None:
        assert len(data) % self.fin.frame_bytes == 0
        for i in range(0, len(data), self.fin.frame_bytes):
            frame = data[i:i + self.fin.frame_bytes]
            assert frame[self.fin.payload_bytes:] == bytes(self.fin.pad_bytes), "pad bytes must be zero"
            n = self.fin.beat_bytes
            beats = [int.from_bytes(frame[b * n:(b + 1) * n], "little") for b in range(self.fin.beats)]
            codes = self.design.top_input.unpack(beats)
            out = run_reference(self.design.graph, codes[None, :])[0]
            packed = b"".join(int(b).to_bytes(self.fout.beat_bytes, "little")
                              for b in self.design.top_output.pack(out))
            self.pending += packed + bytes(self.fout.pad_bytes)


class Channel:
    def __init__(self, accel: Accelerator, direction: str, log: list) -> None:
        self.accel, self.direction, self.log = accel, direction, log
        self.busy = False
        self.error = False
        self.transferred = 0
        self.armed = None

    @property
    def idle(self) -> bool:
        if self.busy and self.direction == "S2MM" and self.armed is not None:
            self._receive()
        return not self.busy

    def transfer(self, array, start: int = 0, nbytes: int = 0) -> None:
        assert not self.busy, "transfer on a busy channel"
        assert start % 4 == 0 and nbytes % 4 == 0
        nbytes = nbytes or array.nbytes - start
        view = array.view(np.uint8)
        self.log.append((self.direction, start, nbytes))
        self.busy = True
        if self.direction == "MM2S":
            if self.accel.mode != "stall_input":
                self.accel.feed(view[start:start + nbytes].tobytes())
                self.busy = False
        elif self.accel.mode == "dma_error":
            self.error = True
        elif self.accel.mode not in ("stall_input", "stall_output"):
            self.armed = (view, start)

    def _receive(self) -> None:
        """The S2MM completes once a whole output frame is there (it ends at the frame's tlast)."""
        frame = self.accel.fout.frame_bytes - (4 if self.accel.mode == "short" else 0)
        if len(self.accel.pending) < frame:
            return
        view, start = self.armed
        data, self.accel.pending = self.accel.pending[:frame], self.accel.pending[frame:]
        view[start:start + len(data)] = np.frombuffer(data, dtype=np.uint8)
        self.transferred = len(data)
        self.armed = None
        self.busy = False

    def wait(self) -> None:
        if self.error:
            raise RuntimeError("DMA Internal Error (transfer length 0?)")
        assert not self.busy, "wait() would hang"


def fake_pynq(design: Design, mode: str = "ok") -> types.ModuleType:
    module = types.ModuleType("pynq")
    accel = Accelerator(design, mode)
    log: list = []

    class Overlay:
        def __init__(self, bitfile_name, **kwargs) -> None:
            self.bitfile_name = bitfile_name
            self.axi_dma_0 = types.SimpleNamespace(sendchannel=Channel(accel, "MM2S", log),
                                                   recvchannel=Channel(accel, "S2MM", log))

    def allocate(shape, dtype="u4", **kwargs):
        return np.zeros(shape, dtype=dtype)

    module.Overlay, module.allocate, module.accel, module.log = Overlay, allocate, accel, log
    return module


@pytest.fixture
def project(tmp_path: Path):
    def make(design: Design) -> Path:
        out = tmp_path / "out"
        emit_driver(design, out)
        return out
    return make


# --- layout and numbers ---------------------------------------------------------------------------

FORMATS = [(24, 8, True, 3), (10, 5, True, 3), (7, 1, False, 2), (33, 16, True, 4), (5, 32, True, 1),
           (9, 12, False, 5), (13, 3, True, 13), (17, 8, False, 4), (3, 48, True, 1), (1, 2, False, 1)]


@pytest.mark.parametrize("size,bits,signed,lanes", FORMATS)
def test_layout_matches_stream_format(size: int, bits: int, signed: bool, lanes: int, project, monkeypatch) -> None:
    driver = load_driver(project(chain_design()), monkeypatch, None)
    fmt = StreamFormat(size, bits, signed, lanes)
    layout = driver.StreamLayout.from_json(fmt.to_json(), 4)
    frame = dma_frame(fmt)
    assert (layout.beat_bytes, layout.payload_bytes, layout.frame_bytes) == \
        (frame.beat_bytes, frame.payload_bytes, frame.frame_bytes)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    codes = np.random.default_rng(size * bits).integers(lo, hi + 1, size=(5, size), dtype=np.int64)
    codes[0] = lo
    codes[1] = hi
    packed = layout.pack(codes)
    assert packed.shape == (5, frame.frame_bytes) and packed.dtype == np.uint8
    for row, code in zip(packed, codes):
        expected = b"".join(int(b).to_bytes(frame.beat_bytes, "little") for b in fmt.pack(code))
        assert row.tobytes() == expected + bytes(frame.pad_bytes)
    assert np.array_equal(layout.unpack(packed), codes)
    with pytest.raises(ValueError):
        layout.pack(np.full((1, size), hi + 1))


def test_numbers_match_the_reference(project, monkeypatch) -> None:
    driver = load_driver(project(chain_design()), monkeypatch, None)
    rng = np.random.default_rng(0)
    for qtype in (QType(True, 8, 2.0 ** -5), QType(False, 4, 0.3, 7), QType(True, 5, 0.125, -3, narrow=True),
                  QType(True, 16, 1e-3)):
        t = driver.NumberType.from_json(qtype.to_json())
        assert (t.min, t.max) == (qtype.min, qtype.max)
        real = np.concatenate([rng.normal(0, qtype.scale * 2 ** qtype.bits / 3, 500),
                               (np.arange(-40, 40) + 0.5) * qtype.scale,      # exact halves: to even
                               [1e9, -1e9]])
        assert np.array_equal(t.quantize(real), quantize(real, qtype))
        codes = np.arange(qtype.min, qtype.max + 1)
        assert np.array_equal(t.dequantize(codes), ((codes - qtype.zero_point) * qtype.scale).astype(np.float32))
    with pytest.raises(ValueError):
        driver.NumberType.from_json(QType(True, 8).to_json()).quantize(np.array([np.nan]))


# --- the overlay against the fake DMA -------------------------------------------------------------

@pytest.mark.parametrize("make", [chain_design, odd_design])
def test_predict_codes_and_predict(make, project, monkeypatch) -> None:
    design = make()
    pynq = fake_pynq(design)
    driver = load_driver(project(design), monkeypatch, pynq)
    accel = driver.EinhlsOverlay("/nowhere/einhls_top.bit", max_batch=8)
    assert accel.max_batch == 8 and accel.dma is not None
    codes = random_inputs(design.graph, 21, seed=4)
    assert np.array_equal(accel.predict_codes(codes), run_reference(design.graph, codes))
    # 21 frames in rounds of 8: one MM2S per round, one S2MM per frame at the frame's offset
    out_bytes = dma_frame(design.top_output).frame_bytes
    in_bytes = dma_frame(design.top_input).frame_bytes
    mm2s = [entry for entry in pynq.log if entry[0] == "MM2S"]
    s2mm = [entry for entry in pynq.log if entry[0] == "S2MM"]
    assert mm2s == [("MM2S", 0, 8 * in_bytes), ("MM2S", 0, 8 * in_bytes), ("MM2S", 0, 5 * in_bytes)]
    assert [start for _, start, _ in s2mm] == [f * out_bytes for f in (*range(8), *range(8), *range(5))]
    assert {n for _, _, n in s2mm} == {out_bytes}
    # real values: the model's quantizers, as Project.predict does
    x = np.random.default_rng(5).normal(0, 1, size=(6, design.graph.input_size))
    want = run_reference(design.graph, quantize_input(design.graph, x))
    if design.graph.output_is_float:
        want = dequantize_output(design.graph, want)
    got = accel.predict(x)
    assert got.dtype == want.dtype and np.array_equal(got, want.reshape(got.shape))
    assert accel.predict(x[0]).shape[0] == 1
    with pytest.raises(ValueError):
        accel.predict_codes(np.full((1, design.graph.input_size), design.graph.input_type.max + 1))
    with pytest.raises(ValueError):
        accel.predict_codes(np.zeros((1, design.graph.input_size + 1), dtype=np.int64))
    t = accel.measure_throughput(frames=16, repeats=2)
    assert t["frames"] == 8 and t["frames_per_s"] > 0 and t["end_to_end_frames_per_s"] > 0
    accel.close()


@pytest.mark.parametrize("mode,channel,words", [
    ("stall_output", "S2MM", "MM2S is idle"),
    ("stall_input", "S2MM", "MM2S is stalled too"),
])
def test_stalls_time_out_naming_the_channel(mode: str, channel: str, words: str, project, monkeypatch) -> None:
    design = chain_design()
    driver = load_driver(project(design), monkeypatch, fake_pynq(design, mode))
    accel = driver.EinhlsOverlay("/nowhere/x.bit", timeout_s=0.05)
    with pytest.raises(driver.DmaTimeout) as info:
        accel.predict_codes(random_inputs(design.graph, 3, seed=0))
    assert info.value.channel == channel
    assert f"{channel} stalled waiting for output frame 1 of 3" in str(info.value) and words in str(info.value)
    assert isinstance(info.value, TimeoutError)


def test_dma_errors_and_short_frames(project, monkeypatch) -> None:
    design = chain_design()
    driver = load_driver(project(design), monkeypatch, fake_pynq(design, "dma_error"))
    with pytest.raises(driver.DmaError, match="S2MM error .*Internal Error"):
        driver.EinhlsOverlay("/nowhere/x.bit").predict_codes(random_inputs(design.graph, 2, seed=0))
    driver = load_driver(project(design), monkeypatch, fake_pynq(design, "short"))
    with pytest.raises(driver.DmaError, match="interface says"):
        driver.EinhlsOverlay("/nowhere/x.bit").predict_codes(random_inputs(design.graph, 2, seed=0))


def test_bitfile_is_found_beside_the_driver(project, monkeypatch) -> None:
    design = chain_design()
    out = project(design)
    driver = load_driver(out, monkeypatch, fake_pynq(design))
    with pytest.raises(FileNotFoundError, match="make bitstream"):
        driver.EinhlsOverlay()
    (out / DEPLOY_DIR).mkdir()
    (out / DEPLOY_DIR / f"{design.top_name}.bit").write_bytes(b"bit")
    assert driver.EinhlsOverlay().bitfile_name == str((out / DEPLOY_DIR / f"{design.top_name}.bit").resolve())


# --- what the driver is -------------------------------------------------------------------------

def test_driver_files(project) -> None:
    design = odd_design()
    out = project(design)
    folder = out / DRIVER_DIR
    assert sorted(p.name for p in folder.iterdir()) == sorted([*MODULES.values(), INTERFACE_FILE, "README.md"])
    spec = json.loads((folder / INTERFACE_FILE).read_text())
    assert spec == json.loads(json.dumps(driver_interface(design)))
    assert spec["input"]["tdata_bits"] == design.top_input.tdata_bits
    assert spec["output"]["dma"]["pad_bytes"] == dma_frame(design.top_output).pad_bytes
    assert spec["input_type"]["scale"] == design.graph.input_type.scale
    # imports: the standard library, numpy, pynq and its own modules; never einhls or cocotbpynq
    allowed = {"__future__", "argparse", "json", "sys", "time", "dataclasses", "pathlib", "numpy", "pynq"}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [] if node.level else [node.module.split(".")[0]]
            else:
                continue
            assert set(names) <= allowed, (path.name, names)
    # deterministic bytes
    other = out.parent / "again"
    emit_driver(odd_design(), other)
    for path in folder.iterdir():
        assert path.read_bytes() == (other / DRIVER_DIR / path.name).read_bytes(), path.name


# --- einhls deploy ------------------------------------------------------------------------------

def test_deploy_refuses_without_bitstream_then_packs(project, tmp_path: Path) -> None:
    design = chain_design()
    out = project(design)
    (out / "einhls.json").write_text(json.dumps({"top": design.top_name}))
    with pytest.raises(EinhlsError, match="no bitstream.*make -C .* bitstream"):
        deploy(out)
    (out / DEPLOY_DIR).mkdir()
    (out / DEPLOY_DIR / f"{design.top_name}.bit").write_bytes(b"bitstream")
    with pytest.raises(EinhlsError, match="hardware handoff"):
        deploy(out)
    (out / DEPLOY_DIR / f"{design.top_name}.hwh").write_text("<EDKSYSTEM/>")
    (out / "tb" / "csim").mkdir(parents=True)
    (out / "tb" / "csim" / "inputs.txt").write_text("1 2\n")
    (out / "tb" / "csim" / "expected.txt").write_text("3\n")
    (out / DRIVER_DIR / "__pycache__").mkdir()
    (out / DRIVER_DIR / "__pycache__" / "x.pyc").write_bytes(b"junk")
    message = deploy(out)
    tarball = out / "out_deploy.tar.gz"
    assert str(tarball) in message
    with tarfile.open(tarball) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
        assert all(m.mtime == 0 for m in tar.getmembers())
    assert names == sorted(["out/einhls_top.bit", "out/einhls_top.hwh", "out/README.md",
                            "out/vectors/inputs.txt", "out/vectors/expected.txt",
                            *(f"out/driver/{n}" for n in [*MODULES.values(), INTERFACE_FILE])])
    first = tarball.read_bytes()
    deploy(out)
    assert tarball.read_bytes() == first          # same files, same bytes


def test_tarball_runs_on_a_board(project, tmp_path: Path, monkeypatch, capsys) -> None:
    """Unpacked as on the board, `python -m driver` finds the bitstream and vectors beside it."""
    design = odd_design()
    out = project(design)
    (out / "einhls.json").write_text(json.dumps({"top": design.top_name}))
    (out / DEPLOY_DIR).mkdir()
    (out / DEPLOY_DIR / f"{design.top_name}.bit").write_bytes(b"bitstream")
    (out / DEPLOY_DIR / f"{design.top_name}.hwh").write_text("<EDKSYSTEM/>")
    inputs = random_inputs(design.graph, 5, seed=9)
    expected = run_reference(design.graph, inputs)
    vectors = out / "tb" / "csim"
    vectors.mkdir(parents=True)
    for name, rows in (("inputs.txt", inputs), ("expected.txt", expected)):
        (vectors / name).write_text("".join(" ".join(map(str, r)) + "\n" for r in rows))
    deploy(out)
    board = tmp_path / "board"
    with tarfile.open(out / "out_deploy.tar.gz") as tar:
        tar.extractall(board, filter="data")
    pynq = fake_pynq(design)
    driver = load_driver(board / "out", monkeypatch, pynq)
    main = importlib.import_module(f"{driver.__name__}.__main__").main
    assert main(["--frames", "4"]) == 0
    printed = capsys.readouterr().out
    assert "bit-exact on 5 vectors" in printed and "frames/s" in printed
    (board / "out" / "vectors" / "expected.txt").write_text(
        "".join(" ".join(map(str, r + 1)) + "\n" for r in expected))
    assert main([]) == 1 and "MISMATCH on 5 of 5 vectors" in capsys.readouterr().out


def test_cli_deploy_exit_code(project, capsys) -> None:
    from codegen.cli import main

    design = chain_design()
    out = project(design)
    (out / "einhls.json").write_text(json.dumps({"top": design.top_name}))
    assert main(["deploy", str(out)]) == 2
    assert "no bitstream" in capsys.readouterr().err
