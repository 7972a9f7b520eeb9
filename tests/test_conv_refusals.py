"""Convolution and pooling attributes einhls does not build, refused by name through the CLI (one
`einhls: error:` line naming the node and the reason, exit 2, no output folder), and the even-kernel
`auto_pad` cases it does build, checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_oracle import onnx_session


def _model(path, op_type: str, x_shape, w_shape=None, outputs=("y",), **attrs) -> None:
    """A float model of one Conv / pool node named ``bad`` reading the graph input (its first output
    the graph's)."""
    rng = np.random.default_rng(0)
    inputs, initializers = ["x"], []
    if w_shape is not None:
        initializers.append(numpy_helper.from_array((rng.integers(-4, 5, size=w_shape) / 8).astype(np.float32), "w"))
        inputs.append("w")
    node = helper.make_node(op_type, inputs, list(outputs), name="bad", **attrs)
    graph = helper.make_graph(
        [node], "refusal", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info(outputs[0], TensorProto.FLOAT, [f"d{d}" for d in range(len(x_shape))])],
        initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def _compile(path, out, capsys) -> tuple[int, str]:
    """`einhls compile` in this process (the CLI's own error handling; a subprocess per case would
    spend most of its time importing torch): (exit code, stderr)."""
    from codegen.cli import main
    capsys.readouterr()
    code = main(["compile", str(path), "-o", str(out), "--default-type", "fixed<8,4>"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case, op_type, x_shape, w_shape, attrs, message", [
    ("conv_3d", "Conv", [1, 2, 4, 4, 4], [3, 2, 3, 3, 3], {}, "3-D convolution"),
    ("conv_3d_pointwise", "Conv", [1, 2, 4, 4, 4], [3, 2, 1, 1, 1], {}, "3-D convolution"),
    ("maxpool_3d", "MaxPool", [1, 2, 4, 4, 4], None, {"kernel_shape": [2, 2, 2]}, "3-D volume"),
    ("avgpool_3d", "AveragePool", [1, 2, 4, 4, 4], None, {"kernel_shape": [2, 2, 2]}, "3-D volume"),
    ("gap_3d", "GlobalAveragePool", [1, 2, 4, 4, 4], None, {}, "3-D volume"),
    ("maxpool_ceil", "MaxPool", [1, 2, 5, 5], None, {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
     "ceil_mode=1"),
    ("avgpool_ceil", "AveragePool", [1, 2, 5, 5], None, {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
     "ceil_mode=1"),
    ("avgpool_exclude_pad", "AveragePool", [1, 2, 6, 6], None, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
     "count_include_pad=0"),
    ("conv_auto_pad", "Conv", [1, 2, 6, 6], [3, 2, 3, 3], {"auto_pad": "SAME_SIDEWAYS"}, "auto_pad 'SAME_SIDEWAYS'"),
    ("pool_auto_pad", "MaxPool", [1, 2, 6, 6], None, {"kernel_shape": [2, 2], "auto_pad": "SAME"}, "auto_pad 'SAME'"),
    ("conv_pads_too_wide", "Conv", [1, 2, 6, 6], [3, 2, 3, 3], {"pads": [0, 3, 0, 0]}, "as wide as"),
    ("conv_group", "Conv", [1, 6, 6, 6], [4, 4, 3, 3], {"group": 4}, "group=4 does not fit"),
    ("conv_rank", "Conv", [1, 2, 6, 6], [3, 2, 3, 3], {"strides": [1, 1, 1]}, "do not match"),
])
def test_unsupported_attributes_refused_by_name(tmp_path, capsys, case, op_type, x_shape, w_shape, attrs,
                                                message):
    path = tmp_path / f"{case}.onnx"
    _model(path, op_type, x_shape, w_shape, **attrs)
    code, err = _compile(path, tmp_path / "out", capsys)
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("einhls: error:") and "bad" in lines[0], err
    assert message in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_maxpool_indices_refused_by_name(tmp_path, capsys):
    path = tmp_path / "indices.onnx"
    _model(path, "MaxPool", [1, 2, 6, 6], None, outputs=("y", "indices"), kernel_shape=[2, 2], strides=[2, 2])
    code, err = _compile(path, tmp_path / "out", capsys)
    assert code == 2, err
    assert err.startswith("einhls: error:") and "Indices" in err and "bad" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("auto_pad, kernel, pads", [
    ("SAME_UPPER", [2, 2], (0, 0, 1, 1)),     # the extra row and column at the end
    ("SAME_LOWER", [2, 2], (1, 1, 0, 0)),     # ... at the start
    ("SAME_LOWER", [4, 2], (2, 1, 1, 0)),
])
def test_even_kernel_auto_pad_matches_onnxruntime(tmp_path, capsys, auto_pad, kernel, pads):
    """auto_pad SAME_* with even kernels is built, not refused: the padding lands on the side ONNX
    puts it, and the reference equals onnxruntime's float conv within one fixed-point step."""
    from codegen.project import Project
    path = tmp_path / "same.onnx"
    _model(path, "Conv", [1, 2, 5, 5], [3, 2] + kernel, auto_pad=auto_pad)
    code, err = _compile(path, tmp_path / "out", capsys)
    assert code == 0, err
    project = Project(tmp_path / "out")
    window = next(op for op in project.graph.ops if op.kind == "window")
    assert window.pads == pads
    x = (np.random.default_rng(1).integers(-64, 64, size=(4, 2, 5, 5)) / 16).astype(np.float32)
    session = onnx_session(str(path))
    expected = np.concatenate([session.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
    got = project.predict(x)
    assert got.shape == expected.shape == (4, 3, 5, 5)
    assert np.abs(got - expected).max() <= project.graph.output_type.scale, np.abs(got - expected).max()
