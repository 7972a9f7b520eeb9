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
import onnx.external_data_helper
from onnx import shape_inference

from ..errors import EinhlsError
from .chain import activation_input
from .names import node_label

MIN_OPSET = 13


#: protobuf cannot parse a message of 2 GiB or more; larger models keep weights in external data
MAX_MODEL_BYTES = 2**31 - 1
#: no FPGA holds more weights than this on chip (128 Mi elements, 128 MiB at 8 bits); a larger
#: tensor, or a shape claiming more, is refused before anything is sized on it
MAX_TENSOR_ELEMENTS = 2**27
#: bytes per element of the initializer types (external data lengths are checked against them)
MAX_ELEMENT_BYTES = 16


def read_model(path: Path) -> onnx.ModelProto:
    """Load an ONNX file and its external data (resolved relative to the file's folder).

    Hostile files are refused with an EinhlsError before any large allocation: the file's size is
    checked before it is read, every declared tensor size before any array is made, and every
    external data reference (inside the model's folder, no symbolic link, within its file) before
    any of it is read.
    """
    path = Path(path)
    if not path.exists():
        raise EinhlsError(f"no such ONNX file: {path}")
    if not path.is_file():
        raise EinhlsError(f"{path} is not a regular file (a folder?); give the .onnx file")
    size = path.stat().st_size
    if size == 0:
        raise EinhlsError(f"the ONNX file {path.name} is empty (0 bytes)")
    if size > MAX_MODEL_BYTES:
        raise EinhlsError(f"the ONNX file {path.name} is {size} bytes, larger than protobuf's 2 GiB limit; "
                          "store the weights as external data (onnx.save(..., save_as_external_data=True))")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and the like
        raise EinhlsError(f"cannot read ONNX model {path.name} (truncated or not an ONNX file): "
                          f"{type(exc).__name__}: {one_line(str(exc))}") from exc
    check_text(model)
    check_declared_sizes(model.graph)
    check_external_data(model, path.parent.resolve())
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as exc:
        raise EinhlsError(f"cannot read the external data of {path.name}: {type(exc).__name__}: "
                          f"{one_line(str(exc))}") from exc
    return model


def one_line(text: str, limit: int = 400) -> str:
    """A message from a library squeezed onto one line (error lines are one line)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ..."


def check_text(model: onnx.ModelProto) -> None:
    """Names, types and metadata must be text: protobuf hands strings that are not valid UTF-8 to
    Python as bytes, which every later step would trip over."""
    def text_fields(graph: onnx.GraphProto):
        yield graph.name, "the graph name"
        for index, node in enumerate(graph.node):
            yield from ((value, f"a name of node #{index}")
                        for value in (node.name, node.op_type, node.domain, *node.input, *node.output))
            for attr in node.attribute:
                yield attr.name, f"an attribute name of node {node.name!r}"
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    yield from text_fields(sub)
        for tensor in graph.initializer:
            yield tensor.name, "an initializer name"
            for entry in tensor.external_data:
                yield entry.key, f"the external data of {tensor.name!r}"
                yield entry.value, f"the external data of {tensor.name!r}"
        for value in (*graph.input, *graph.output, *graph.value_info):
            yield value.name, "a value name"
            for dim in value.type.tensor_type.shape.dim:
                yield dim.dim_param, f"a dimension name of {value.name!r}"

    fields = list(text_fields(model.graph))
    fields += [(opset.domain, "an opset domain") for opset in model.opset_import]
    fields += [(v, "the model's metadata") for prop in model.metadata_props for v in (prop.key, prop.value)]
    for value, where in fields:
        if not isinstance(value, str):
            raise EinhlsError(f"{where} is not valid UTF-8 text ({bytes(value)[:40]!r}); the file is "
                              "corrupted or hostile")


def _elements(dims, what: str, name: str, op_type: str) -> int:
    count = 1
    for dim in dims:
        if dim < 0:
            raise EinhlsError(f"{what} has a negative dimension {dim}", name, op_type)
        count *= dim
    if count > MAX_TENSOR_ELEMENTS:
        raise EinhlsError(f"{what} has shape {list(dims)}: {count} elements, more than the "
                          f"{MAX_TENSOR_ELEMENTS} einhls accepts", name, op_type)
    return count


def _graph_tensors(graph: onnx.GraphProto):
    """(tensor, node or None) of every initializer and Constant-node tensor, subgraphs included."""
    for tensor in graph.initializer:
        yield tensor, None
    for sparse in graph.sparse_initializer:
        yield sparse.values, None
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t, node
            for tensor in attr.tensors:
                yield tensor, node
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _graph_tensors(sub)


def _raw_bytes(data_type: int, count: int) -> int | None:
    """Bytes of raw data a tensor of ``count`` elements of ``data_type`` holds (None: not fixed)."""
    if data_type in (onnx.TensorProto.STRING, onnx.TensorProto.UNDEFINED):
        return None
    sub_byte = {getattr(onnx.TensorProto, name, None): bits for name, bits in
                (("INT4", 4), ("UINT4", 4), ("FLOAT4E2M1", 4), ("INT2", 2), ("UINT2", 2))}
    if data_type in sub_byte:   # packed several per byte
        return (count * sub_byte[data_type] + 7) // 8
    try:
        return count * onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return None


def check_declared_sizes(graph: onnx.GraphProto) -> None:
    """Refuse any tensor or value whose declared shape is beyond what einhls could hold."""
    for tensor, node in _graph_tensors(graph):
        if node is None:
            count = _elements(tensor.dims, f"initializer {tensor.name!r}", tensor.name, "initializer")
            where, name, op_type = f"initializer {tensor.name!r}", tensor.name, "initializer"
        else:
            count = _elements(tensor.dims, "its constant tensor", node_label(node), node.op_type)
            where, name, op_type = "its constant tensor", node_label(node), node.op_type
        expected = _raw_bytes(tensor.data_type, count)
        if tensor.HasField("raw_data") and expected is not None and len(tensor.raw_data) != expected:
            raise EinhlsError(f"{where} holds {len(tensor.raw_data)} bytes of raw data, its shape "
                              f"{list(tensor.dims)} and type need {expected}", name, op_type)
    for value in (*graph.input, *graph.output, *graph.value_info):
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim if d.HasField("dim_value")]
        _elements(dims, f"value {value.name!r}", value.name, "value info")


def check_external_data(model: onnx.ModelProto, folder: Path) -> None:
    """Every external data reference must name a regular file inside ``folder`` (no symbolic link
    on the way), and its offset and length must lie within that file and a sane size."""
    for tensor, _ in _graph_tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"the external data {location!r} of initializer {tensor.name!r}"
        if not location or Path(location).is_absolute() or ".." in Path(location).parts:
            raise EinhlsError(f"{where} is outside the model's folder (it must be a relative path "
                              "inside it)", tensor.name, "initializer")
        file = folder / location
        probe = folder
        for part in Path(location).parts:
            probe = probe / part
            if probe.is_symlink():
                raise EinhlsError(f"{where} goes through the symbolic link {probe.name!r}; a link may "
                                  "point outside the model's folder: copy the data instead",
                                  tensor.name, "initializer")
        if not file.resolve().is_relative_to(folder):
            raise EinhlsError(f"{where} is outside the model's folder", tensor.name, "initializer")
        if not file.is_file():
            raise EinhlsError(f"{where} is missing (it must be a file in {folder})", tensor.name, "initializer")
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
        except ValueError:
            raise EinhlsError(f"{where} has a malformed offset or length", tensor.name, "initializer") from None
        available = file.stat().st_size
        if offset < 0 or offset > available:
            raise EinhlsError(f"{where}: offset {offset} is beyond the end of the file ({available} bytes)",
                              tensor.name, "initializer")
        if length > MAX_TENSOR_ELEMENTS * MAX_ELEMENT_BYTES:
            raise EinhlsError(f"{where}: length {length} bytes is more than einhls accepts for one tensor",
                              tensor.name, "initializer")
        if length >= 0 and offset + length > available:
            raise EinhlsError(f"{where}: {length} bytes from offset {offset} run past the end of the file "
                              f"({available} bytes)", tensor.name, "initializer")
        if length < 0 and available - offset > MAX_TENSOR_ELEMENTS * MAX_ELEMENT_BYTES:
            raise EinhlsError(f"{where}: the file is more than einhls accepts for one tensor",
                              tensor.name, "initializer")


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
    producers: dict[str, onnx.NodeProto] = {}
    for node in graph.node:
        for name in node.output:
            if not name:
                continue
            if name in producers or name in defined:
                first = node_label(producers[name]) if name in producers else "an input or initializer"
                raise EinhlsError(f"output {name!r} is produced more than once (also by {first}); "
                                  "every tensor must have one producer", node_label(node), node.op_type)
            producers[name] = node
    produced_later = set(producers)
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
    except UnicodeDecodeError as exc:  # the checker's message quotes a name that is not UTF-8
        raise EinhlsError("the ONNX checker rejects the model, and its message holds text that is not "
                          "valid UTF-8 (a corrupted or hostile name?)") from exc
    model = _infer_shapes(model)
    # onnx infers no shape through com.microsoft QuantizeLinear / DequantizeLinear (onnxruntime's
    # int16 quantizers), so a shape computed from a tensor behind one (a Pad's pads from Shape of a
    # Reshape) stays unknown: give those outputs their input's shape and infer again
    for _ in range(len(model.graph.node)):
        if not _shapes_through_microsoft_quantizers(model.graph):
            break
        model = _infer_shapes(model)
    return model


def _infer_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, check_type=True, strict_mode=False, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError and others
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        match = re.search(r"\(op_type:\s*([^,]+), node name:\s*([^)]*)\)", text)
        node, op_type = (match.group(2), match.group(1)) if match else (None, None)
        raise EinhlsError(f"ONNX shape inference failed: {text}", node, op_type) from exc


def _element_type(graph: onnx.GraphProto, name: str, default: int) -> int:
    """The element type of tensor ``name`` (an initializer, a Constant node's value or a typed
    value), else ``default``."""
    for init in graph.initializer:
        if init.name == name:
            return init.data_type
    for node in graph.node:
        if node.op_type == "Constant" and name in node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    return attr.t.data_type
    for vi in list(graph.input) + list(graph.value_info):
        if vi.name == name and vi.type.tensor_type.elem_type:
            return vi.type.tensor_type.elem_type
    return default


def _shapes_through_microsoft_quantizers(graph: onnx.GraphProto) -> bool:
    """Add the shape of every com.microsoft QuantizeLinear / DequantizeLinear output whose input's
    shape is known and its own is not (the output keeps the input's shape; its element type is the
    zero point's, or float after a DequantizeLinear).  Whether any was added."""
    typed = {vi.name: vi for vi in list(graph.input) + list(graph.value_info) + list(graph.output)}
    added = False
    for node in graph.node:
        if node.domain != "com.microsoft" or node.op_type not in ("QuantizeLinear", "DequantizeLinear") \
                or not node.input or node.input[0] not in typed or not node.output:
            continue
        out = node.output[0]
        source = typed[node.input[0]].type.tensor_type
        if (out in typed and typed[out].type.tensor_type.HasField("shape")) or not source.HasField("shape") \
                or not all(d.HasField("dim_value") for d in source.shape.dim):
            continue
        if node.op_type == "QuantizeLinear":
            elem = _element_type(graph, node.input[2], onnx.TensorProto.UINT8) if len(node.input) > 2 and node.input[2] \
                else onnx.TensorProto.UINT8
        else:
            elem = onnx.TensorProto.FLOAT
        info = onnx.helper.make_tensor_value_info(out, elem, [d.dim_value for d in source.shape.dim])
        if out in typed:
            typed[out].CopyFrom(info)
        else:
            graph.value_info.append(info)
            typed[out] = graph.value_info[-1]
        added = True
    return added
