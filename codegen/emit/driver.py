"""PYNQ driver back end: the Python package OUT/driver/ that runs the accelerator on the board.

Output layout::

    OUT/driver/__init__.py              exports EinhlsOverlay (lazily: it imports pynq), the layout
    OUT/driver/overlay.py               EinhlsOverlay(pynq.Overlay): predict, predict_codes,
                                        measure_throughput, DMA waits with timeouts
    OUT/driver/layout.py                DMA byte layout, quantize/dequantize (NumPy only)
    OUT/driver/__main__.py              `python -m driver`: stored vectors bit-exact + frames/s
    OUT/driver/README.md                how to run it on the board (also the deploy tarball's README)
    OUT/driver/einhls_interface.json    everything design-specific the driver reads

The Python files are the same for every design (templates/driver/, rendered only to name the
design in their docstrings); the design lives in einhls_interface.json, written here from the
Design.  The driver imports neither einhls nor cocotbpynq, so it runs on a board with only PYNQ,
and unchanged under cocotbpynq in the PYNQ simulation (verify/pynqsim.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import jinja2

from .. import __version__
from ..resources import resource_dir
from ..schedule.design import Design
from .vivado import (DMA_INSTANCE, DMA_MAX_TRANSFER_BYTES, DMA_WORD_BYTES, bitstream_name, dma_frame,
                     plan_board)

DRIVER_DIR = "driver"
INTERFACE_FILE = "einhls_interface.json"
INTERFACE_FORMAT = "einhls-driver-interface/1"
README = "README.md"
# template -> file in OUT/driver/
MODULES = {"__init__.py.j2": "__init__.py", "layout.py.j2": "layout.py", "overlay.py.j2": "overlay.py",
           "__main__.py.j2": "__main__.py"}


def driver_interface(design: Design) -> dict:
    """What the driver needs to know about the design (einhls_interface.json)."""
    graph, board = design.graph, design.board
    fin, fout = design.top_input, design.top_output
    return {
        "format": INTERFACE_FORMAT,
        "einhls_version": __version__,
        "top": design.top_name,
        "bitfile": bitstream_name(design.top_name),
        "board": {"name": board.name, "pynq_board": board.pynq_board, "part": board.part, "ps": board.ps},
        "clock_mhz": float(design.clock_mhz),
        "dma": {"instance": DMA_INSTANCE, "word_bytes": DMA_WORD_BYTES,
                "max_transfer_bytes": DMA_MAX_TRANSFER_BYTES,
                "layout": "frame = the accelerator's beats (tdata_bits/8 bytes, little-endian) concatenated, "
                          "zero-padded to whole DMA words; one MM2S transfer per batch, one S2MM transfer "
                          "per output frame (tlast on its last word)"},
        "input": {**fin.to_json(), "dma": dma_frame(fin).to_json()},
        "output": {**fout.to_json(), "dma": dma_frame(fout).to_json()},
        "input_type": graph.input_type.to_json(),
        "output_type": graph.output_type.to_json(),
        "input_shape": list(graph.input_shape),
        "output_shape": list(graph.output_shape),
        "output_is_float": bool(graph.output_is_float),
        # several model inputs packed into each input token (an attention mask): predict() takes
        # the others by name and packs them (codegen/ir/graph.py InputPart, docs/interface.md)
        "tokens": int(graph.tokens),
        "input_parts": [part.to_json() for part in graph.input_parts],
        # a CNN: frames stream pixel by pixel; predict() transposes [C, pixels] <-> [pixels, C]
        "channels_first": {"input": [graph.input_size, graph.tokens],
                           "output": [graph.output_size, graph.output_tokens]} if graph.channels_first else None,
    }


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates") / "driver")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True, autoescape=False)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))   # bytes: no platform newline translation


def emit_driver(design: Design, out: Path) -> None:
    """Write the PYNQ driver package OUT/driver/ for ``design``."""
    folder = Path(out) / DRIVER_DIR
    env = _environment()
    spec = driver_interface(design)
    plan = plan_board(design)
    ctx = {"version": __version__, "top": design.top_name, "board": design.board.name}
    for template, name in MODULES.items():
        _write(folder / name, env.get_template(template).render(**ctx))
    readme = env.get_template("README.md.j2").render(
        version=__version__, top=design.top_name, board=design.board, clock_text=plan.clock_text,
        bitfile=spec["bitfile"], input=design.top_input, output=design.top_output,
        input_type=design.graph.input_type, output_type=design.graph.output_type,
        output_is_float=spec["output_is_float"], dma_instance=DMA_INSTANCE,
        in_frame_bytes=plan.inp.frame_bytes, out_frame_bytes=plan.outp.frame_bytes)
    _write(folder / README, readme)
    _write(folder / INTERFACE_FILE, json.dumps(spec, indent=1, sort_keys=True) + "\n")
