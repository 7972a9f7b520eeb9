"""A corpus of hostile ONNX files, generated on demand (nothing binary is stored in git).

Each case writes one model into a folder and says which words the one-line refusal must contain.
They start from the demo model (which compiles) and break one thing each, so the refusal is about
that thing and nothing else.  ``build(name, folder)`` returns the path of the model to compile.

    python -m tests.hostile OUTDIR     # writes every case into OUTDIR/<case>/ (to try by hand)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from codegen.demo_model import demo_model


@dataclass(frozen=True)
class Case:
    name: str
    write: Callable[[Path], Path]       # folder -> model path
    reason: str                         # a regular expression the error line must match


CASES: dict[str, Case] = {}


def case(reason: str):
    def register(write: Callable[[Path], Path]) -> Callable[[Path], Path]:
        name = write.__name__.removeprefix("write_")
        CASES[name] = Case(name, write, reason)
        return write
    return register


def _save(model: onnx.ModelProto, folder: Path, name: str = "model.onnx") -> Path:
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def _init(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


# --- not an ONNX file at all -----------------------------------------------------------------

@case(r"empty")
def write_empty(folder: Path) -> Path:
    path = folder / "model.onnx"
    path.write_bytes(b"")
    return path


@case(r"cannot read ONNX model")
def write_garbage(folder: Path) -> Path:
    path = folder / "model.onnx"
    path.write_bytes(np.random.default_rng(13).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


@case(r"cannot read ONNX model")
def write_truncated(folder: Path) -> Path:
    data = demo_model().SerializeToString()
    path = folder / "model.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


@case(r"cannot read ONNX model")
def write_text_file(folder: Path) -> Path:
    path = folder / "model.onnx"
    path.write_text("ir_version: 8\ngraph { node { op_type: 'Relu' } }\n")
    return path


@case(r"is a folder|no such ONNX file|not a regular file")
def write_folder_not_file(folder: Path) -> Path:
    path = folder / "model.onnx"
    path.mkdir()
    return path


@case(r"2 GiB|larger than")
def write_two_gigabytes(folder: Path) -> Path:
    """A 2 GiB file, sparse on disk (a few KB really written): refused on its size, unread."""
    path = _save(demo_model(), folder)
    with path.open("r+b") as handle:
        handle.truncate(2**31 + 4096)
    return path


# --- a broken graph ----------------------------------------------------------------------------

@case(r"cycle|not topologically sorted|produced by a later node")
def write_graph_cycle(folder: Path) -> Path:
    model = demo_model()
    relu1, relu2 = _node(model, "fc1.relu"), _node(model, "fc2.relu")
    relu1.input[0], relu2.output[0] = relu2.output[0], relu2.output[0]
    # fc1.relu now reads fc2.relu's output, which depends on fc1.relu: a cycle
    return _save(model, folder)


@case(r"missing initializer|not an initializer")
def write_missing_initializer(folder: Path) -> Path:
    model = demo_model()
    model.graph.initializer.remove(_init(model, "fc2.weight"))
    return _save(model, folder)


@case(r"weight has 63 inputs, the activation 64")
def write_shape_mismatch(folder: Path) -> Path:
    model = demo_model()
    weight = _init(model, "fc2.weight")            # [64, 32] int8: make it [63, 32]
    codes = numpy_helper.to_array(weight)[:63]
    weight.CopyFrom(numpy_helper.from_array(codes, weight.name))
    return _save(model, folder)


@case(r"Conv|not supported|unsupported")
def write_unsupported_op(folder: Path) -> Path:
    model = demo_model()
    relu = _node(model, "fc1.relu")
    relu.op_type = "Softsign"
    return _save(model, folder)


@case(r"domain|not supported|unsupported|custom")
def write_unknown_domain(folder: Path) -> Path:
    model = demo_model()
    relu = _node(model, "fc1.relu")
    relu.domain, relu.op_type = "evil.domain", "Backdoor"
    model.opset_import.append(helper.make_opsetid("evil.domain", 1))
    return _save(model, folder)


@case(r"UTF-8")
def write_non_utf8_op_type(folder: Path) -> Path:
    """Found by bench/fuzz_loader.py: the ONNX checker's message quoted a name that is not UTF-8
    and raised UnicodeDecodeError instead of its ValidationError."""
    data = demo_model().SerializeToString()
    assert data.count(b"\x04Relu") == 2
    path = folder / "model.onnx"
    path.write_bytes(data.replace(b"\x04Relu", b"\x04R\x92lu"))
    return path


@case(r"not valid UTF-8")
def write_non_utf8_external_location(folder: Path) -> Path:
    """Found by bench/fuzz_loader.py: protobuf gives a string that is not UTF-8 to Python as bytes,
    and the external data check passed it to pathlib (TypeError)."""
    model = demo_model()
    _externalise(model, "fc1.weight", "weights.bin")
    data = model.SerializeToString()
    path = folder / "model.onnx"
    path.write_bytes(data.replace(b"weights.bin", b"weights\x92bin"))
    return path


@case(r"not valid UTF-8")
def write_non_utf8_node_name(folder: Path) -> Path:
    data = demo_model().SerializeToString()
    path = folder / "model.onnx"
    path.write_bytes(data.replace(b"fc1.relu", b"fc1\xffrelu"))
    return path


@case(r"output")
def write_no_output(folder: Path) -> Path:
    model = demo_model()
    del model.graph.output[:]
    return _save(model, folder)


@case(r"opset")
def write_no_opset(folder: Path) -> Path:
    model = demo_model()
    del model.opset_import[:]
    return _save(model, folder)


@case(r"more than once|duplicate|SSA|written twice|produced twice")
def write_duplicate_output_name(folder: Path) -> Path:
    model = demo_model()
    _node(model, "fc2.relu").output[0] = _node(model, "fc1.relu").output[0]
    return _save(model, folder)


@case(r"scale")
def write_zero_scale(folder: Path) -> Path:
    model = demo_model()
    scale = _init(model, "fc2.weight_scale")
    scale.CopyFrom(numpy_helper.from_array(np.array(0.0, np.float32), scale.name))
    return _save(model, folder)


@case(r"scale")
def write_nan_scale(folder: Path) -> Path:
    model = demo_model()
    scale = _init(model, "fc2.weight_scale")
    scale.CopyFrom(numpy_helper.from_array(np.array(np.nan, np.float32), scale.name))
    return _save(model, folder)


@case(r"bit ?width|bits")
def write_absurd_bit_width(folder: Path) -> Path:
    model = demo_model()
    bits = _init(model, "act1_q.bitwidth")
    bits.CopyFrom(numpy_helper.from_array(np.array(4096.0, np.float32), bits.name))
    return _save(model, folder)


# --- sizes that would exhaust memory ------------------------------------------------------------

@case(r"elements|too large|exceeds|size")
def write_huge_initializer_dims(folder: Path) -> Path:
    """An initializer that claims 2^40 x 2^20 floats but carries 16 bytes."""
    model = demo_model()
    weight = _init(model, "fc1.weight")
    del weight.dims[:]
    weight.dims.extend([2**40, 2**20])
    weight.raw_data = b"\0" * 16
    return _save(model, folder)


@case(r"elements|too large|exceeds|size")
def write_huge_input_dims(folder: Path) -> Path:
    """A graph input of 2^31 x 2^31 elements (a model that matches it cannot be stored, but the
    loader must refuse the shape itself before sizing any buffer on it)."""
    model = demo_model()
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value = 2**62
    return _save(model, folder)


@case(r"raw data|bytes|size")
def write_raw_data_size_mismatch(folder: Path) -> Path:
    model = demo_model()
    weight = _init(model, "fc2.weight")
    weight.raw_data = weight.raw_data[:-7]
    return _save(model, folder)


@case(r"bytes of raw data")
def write_raw_data_too_long(folder: Path) -> Path:
    """Found by bench/fuzz_loader.py: raw data longer than the shape needs passes the ONNX checker
    (it only checks for too little) and numpy's reshape raised ValueError."""
    model = demo_model()
    bias = _init(model, "fc1.bias")
    bias.raw_data = bias.raw_data * 5
    return _save(model, folder)


# --- external data pointing where it must not ---------------------------------------------------

def _externalise(model: onnx.ModelProto, name: str, location: str, offset: int = 0,
                 length: int | None = None) -> None:
    tensor = _init(model, name)
    size = len(tensor.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    entries = {"location": location, "offset": str(offset), "length": str(size if length is None else length)}
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)


@case(r"outside|escapes|not in the model's folder")
def write_external_data_outside(folder: Path) -> Path:
    model = demo_model()
    inner = folder / "model"
    inner.mkdir()
    (folder / "secret.bin").write_bytes(numpy_helper.to_array(_init(model, "fc1.weight")).tobytes())
    _externalise(model, "fc1.weight", "../secret.bin")
    return _save(model, inner)


@case(r"outside|escapes|not in the model's folder|absolute")
def write_external_data_absolute(folder: Path) -> Path:
    model = demo_model()
    _externalise(model, "fc1.weight", "/etc/passwd")
    return _save(model, folder)


@case(r"outside|escapes|symbolic link|symlink")
def write_external_data_symlink_out(folder: Path) -> Path:
    model = demo_model()
    inner = folder / "model"
    inner.mkdir()
    target = folder / "secret.bin"
    target.write_bytes(numpy_helper.to_array(_init(model, "fc1.weight")).tobytes())
    os.symlink(target, inner / "weights.bin")
    _externalise(model, "fc1.weight", "weights.bin")
    return _save(model, inner)


@case(r"missing|no such|not found")
def write_external_data_missing(folder: Path) -> Path:
    model = demo_model()
    _externalise(model, "fc1.weight", "weights.bin")
    return _save(model, folder)


@case(r"beyond|past the end|shorter|bytes|length")
def write_external_data_past_end(folder: Path) -> Path:
    model = demo_model()
    data = numpy_helper.to_array(_init(model, "fc1.weight")).tobytes()
    (folder / "weights.bin").write_bytes(data)
    _externalise(model, "fc1.weight", "weights.bin", offset=2**40)
    return _save(model, folder)


@case(r"elements|too large|exceeds|bytes|length")
def write_external_data_huge_length(folder: Path) -> Path:
    """External data that claims 1 TiB in a sparse file of the same size: refused unread."""
    model = demo_model()
    big = folder / "weights.bin"
    with big.open("wb") as handle:
        handle.truncate(2**40)
    _externalise(model, "fc1.weight", "weights.bin", length=2**40)
    return _save(model, folder)


# --- names that attack the generated code (accepted, but never copied into it) ------------------

HOSTILE_NAMES = ["ends in a trigraph ??/", 'x"; system("rm -rf ~"); //', "*/ module evil; /*", "{{ 7*7 }}{% raw %}", "../../../../tmp/evil",
                 "a\nb\r\n#include <evil>", "\\\\`define X", "CON.aux::", "$readmemh(\"/etc/passwd\")"]


def hostile_names_model() -> onnx.ModelProto:
    """The demo model with every node, tensor and graph name replaced by a hostile one."""
    model = demo_model()
    renames: dict[str, str] = {}
    tensors = {t.name for t in model.graph.initializer} | {n for node in model.graph.node for n in node.output}
    tensors |= {model.graph.input[0].name, model.graph.output[0].name}
    for index, name in enumerate(sorted(tensors)):
        renames[name] = f"{HOSTILE_NAMES[index % len(HOSTILE_NAMES)]}#{index}"
    for tensor in model.graph.initializer:
        tensor.name = renames[tensor.name]
    for index, node in enumerate(model.graph.node):
        node.name = f"{HOSTILE_NAMES[index % len(HOSTILE_NAMES)]}@{index}"
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in (*model.graph.input, *model.graph.output):
        value.name = renames[value.name]
    model.graph.name = HOSTILE_NAMES[0]
    # the sparsity declaration names a node: follow the rename
    for prop in model.metadata_props:
        if prop.key == "einhls.sparsity.fc2":
            prop.key = "einhls.sparsity." + _node_by_op_index(model, "MatMul").name
    return model


def _node_by_op_index(model: onnx.ModelProto, op_type: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.op_type == op_type)


def build(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return CASES[name].write(folder)


if __name__ == "__main__":
    import sys

    root = Path(sys.argv[1])
    for name in CASES:
        print(name, build(name, root / name))
