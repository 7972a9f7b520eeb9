"""Reading and normalising an ONNX model before lowering.

:func:`read_model` loads a file (with weights in an external data file beside it);
:func:`prepare_model` checks it and puts it in the form the lowering expects: opset >= 13, every
node input defined, initializers not listed as inputs, the batch dimension fixed to 1, no other
symbolic dimension, shapes inferred.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import onnx
from onnx import shape_inference

from ..errors import EinhlsError
from .chain import activation_input
from .names import node_label

MIN_OPSET = 13


def read_model(path: Path) -> onnx.ModelProto:
    """Load an ONNX file and its external data (resolved relative to the file's folder)."""
    path = Path(path)
    if not path.is_file():
        raise EinhlsError(f"no such ONNX file: {path}")
    try:
        model = onnx.load(str(path), load_external_data=True)
    except Exception as exc:  # protobuf DecodeError, unreadable external data file, ...
        raise EinhlsError(f"cannot read ONNX model {path.name} (truncated or not an ONNX file, or its "
                          f"external data is missing): {type(exc).__name__}: {exc}") from exc
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:  # onnx leaves it so when the file is gone
            where = next((e.value for e in tensor.external_data if e.key == "location"), "?")
            raise EinhlsError(f"the external data file {where!r} of initializer {tensor.name!r} is missing "
                              f"(it must be in {path.parent})", tensor.name, "initializer")
    return model


def opset_version(model: onnx.ModelProto) -> int:
    """The model's version of the standard ONNX domain."""
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return opset.version
    raise EinhlsError("the model imports no standard ONNX opset")


def check_defined_inputs(graph: onnx.GraphProto) -> None:
    """Every node input must be an initializer, a graph input or an earlier node's output."""
    defined = {vi.name for vi in graph.input} | {init.name for init in graph.initializer}
    defined |= {init.name for init in graph.sparse_initializer}
    produced_later = {name for node in graph.node for name in node.output}
    for node in graph.node:
        for name in node.input:
            if name and name not in defined:
                if name in produced_later:
                    reason = (f"input {name!r} is produced by a later node (the graph is not "
                              "topologically sorted)")
                else:
                    reason = (f"input {name!r} is not an initializer, a graph input or any node's output "
                              "(missing initializer?)")
                raise EinhlsError(reason, node_label(node), node.op_type)
        defined.update(name for name in node.output if name)
    for out in graph.output:
        if out.name not in defined:
            raise EinhlsError(f"graph output {out.name!r} is not produced by any node", out.name,
                              "graph output")


def drop_constant_inputs(graph: onnx.GraphProto) -> None:
    """Initializers also listed as graph inputs are constants: remove them from the inputs."""
    constants = {init.name for init in graph.initializer}
    keep = [vi for vi in graph.input if vi.name not in constants]
    del graph.input[:]
    graph.input.extend(keep)


def fix_batch_dimension(graph: onnx.GraphProto) -> None:
    """Set a symbolic (or unknown) first dimension of the input to 1; refuse any other symbolic one."""
    value = activation_input(graph)
    dims = value.type.tensor_type.shape.dim
    for index, dim in enumerate(dims):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            continue
        if index == 0:
            dim.Clear()
            dim.dim_value = 1
            continue
        what = f"symbolic dimension {dim.dim_param!r}" if dim.dim_param else "unknown dimension"
        raise EinhlsError(f"input dimension {index} is a {what}; only the first (batch) dimension may be "
                          "dynamic: export with a fixed shape", value.name, "graph input")
    for out in graph.output:
        out_dims = out.type.tensor_type.shape.dim
        for index, dim in enumerate(out_dims):
            if not dim.HasField("dim_value"):
                dim.Clear()  # recomputed by shape inference
                if index == 0:
                    dim.dim_value = 1
    del graph.value_info[:]  # stale symbolic shapes; shape inference recomputes them


def checker_error(exc: Exception) -> EinhlsError:
    """An EinhlsError from an onnx checker message, naming the node when the message does."""
    text = str(exc).strip()
    match = re.search(r"Name: ?(.*?) OpType: ?(\S+)", text)
    reason = f"the ONNX checker rejects the model: {text.splitlines()[0]}"
    return EinhlsError(reason, match.group(1), match.group(2)) if match else EinhlsError(reason)


def prepare_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A checked copy of ``model`` with the batch fixed to 1 and shapes inferred."""
    model = copy.deepcopy(model)
    graph = model.graph
    version = opset_version(model)
    if version < MIN_OPSET:
        raise EinhlsError(f"opset {version} is older than {MIN_OPSET}: re-export with opset_version >= "
                          f"{MIN_OPSET} (or convert with onnx.version_converter)")
    check_defined_inputs(graph)
    drop_constant_inputs(graph)
    fix_batch_dimension(graph)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise checker_error(exc) from exc
    try:
        return shape_inference.infer_shapes(model, check_type=True, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError and others
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        match = re.search(r"\(op_type:\s*([^,]+), node name:\s*([^)]*)\)", text)
        node, op_type = (match.group(2), match.group(1)) if match else (None, None)
        raise EinhlsError(f"ONNX shape inference failed: {text}", node, op_type) from exc
