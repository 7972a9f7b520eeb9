"""One fuzz case: a spec through onnxruntime, the integer reference, C-sim and RTL sim.

Stages, in order; the first that fails names the finding:

* ``build``: the form wrote an ONNX model the ONNX checker rejects (a bug in the fuzzer);
* ``refused``: einhls refused a model of a form it accepts (EinhlsError);
* ``crash``: einhls raised anything else;
* ``ir``: the IR breaks an invariant the hardware relies on (a Linear's accumulator type narrower
  than the range of its dot products over its input type);
* ``onnxruntime``: the integer reference differs from onnxruntime's float run by more than the
  form's tolerance (in output quantization steps), or an inner tensor the form names
  (``Built.probes``) differs from onnxruntime's, code for code, by more than allowed;
* ``compile``: compiling the model failed;
* ``csim`` / ``rtlsim``: the simulated design differs from the reference (bit for bit), or the
  tool failed.
"""
from __future__ import annotations

import json
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np

TARGETS = ("ort", "csim", "rtlsim")


def run_case(spec: dict, targets: tuple[str, ...] = TARGETS, vectors: int = 24, keep: Path | None = None) -> dict:
    """Check one spec; returns {"spec", "ok", "stage", "detail", "ort_max_steps"}.

    ``keep``: a folder to leave the model (and the compiled project) in; else a temporary one.
    """
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="einhls_fuzz_") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return {"spec": spec, **_stages(spec, targets, vectors, folder)}
        except Exception as exc:   # a crash of the fuzzer or of einhls: a finding either way
            return {"spec": spec, "ok": False, "stage": "crash",
                    "detail": f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-6)}"}


def _stages(spec: dict, targets: tuple[str, ...], vectors: int, folder: Path) -> dict:
    import onnx
    from codegen.errors import EinhlsError
    from codegen.frontend import load_graph
    from codegen.ir.reference import dequantize, dequantize_output, random_inputs, run_reference

    from .forms import FORMS

    built = FORMS[spec["form"]].build(spec)
    try:
        onnx.checker.check_model(built.quantized)
        onnx.checker.check_model(built.floating)
    except onnx.checker.ValidationError as exc:
        return {"ok": False, "stage": "build", "detail": str(exc).splitlines()[0]}
    model_path = folder / "model.onnx"
    model_path.write_bytes(built.quantized.SerializeToString())
    (folder / "spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True) + "\n")
    try:
        graph = load_graph(model_path)
    except EinhlsError as exc:
        return {"ok": False, "stage": "refused", "detail": str(exc)}

    problem = ir_problem(graph)
    if problem:
        return {"ok": False, "stage": "ir", "detail": problem}

    result = {"ok": True, "stage": None, "detail": "", "ort_max_steps": None}
    codes = random_inputs(graph, vectors, seed=spec["seed"] % 1000)
    if "ort" in targets and built.ort_tolerance is not None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the model as written
        options.log_severity_level = 3
        session = ort.InferenceSession(built.floating.SerializeToString(), options, providers=["CPUExecutionProvider"])
        real_in = dequantize(codes, graph.input_type)
        if graph.channels_first:   # the codes stream pixel by pixel; onnxruntime takes [C, H, W]
            real_in = real_in.reshape(vectors, graph.tokens, graph.input_size).transpose(0, 2, 1)
        real_in = np.ascontiguousarray(real_in).reshape((vectors, *graph.input_shape[1:]))
        got = np.stack([session.run(None, {"x": real_in[i:i + 1]})[0].reshape(-1) for i in range(vectors)])
        expected = dequantize_output(graph, run_reference(graph, codes)).reshape(vectors, -1)
        steps = np.abs(got.astype(np.float64) - expected.astype(np.float64)) / graph.output_type.scale
        worst = float(np.max(steps)) if steps.size else 0.0
        result["ort_max_steps"] = round(worst, 3)
        if worst > built.ort_tolerance + 1e-3:
            at = np.unravel_index(int(np.argmax(steps)), steps.shape)
            return {**result, "ok": False, "stage": "onnxruntime",
                    "detail": f"reference {expected[at]} vs onnxruntime {got[at]} at vector {at[0]} output {at[1]}: "
                              f"{worst:g} steps (allowed {built.ort_tolerance})"}

    if "ort" in targets and built.probes:
        for name, (ours, theirs) in probe_codes(built.quantized, graph, codes, list(built.probes)).items():
            worst = int(np.max(np.abs(ours - theirs))) if ours.size else 0
            result["probe_max_codes"] = max(result.get("probe_max_codes", 0), worst)
            if worst > built.probes[name]:
                at = np.unravel_index(int(np.argmax(np.abs(ours - theirs))), ours.shape)
                return {**result, "ok": False, "stage": "onnxruntime",
                        "detail": f"{name}: reference code {ours[at]} vs onnxruntime {theirs[at]} at vector {at[0]} "
                                  f"element {at[1]}: {worst} codes (allowed {built.probes[name]})"}

    sims = tuple(t for t in targets if t in ("csim", "rtlsim"))
    if sims:
        from codegen.project import CompileOptions, compile_model
        from codegen.verify.runner import verify

        try:
            project = compile_model(model_path, folder / "out", CompileOptions(), force=True, progress=lambda *_: None)
        except EinhlsError as exc:
            return {**result, "ok": False, "stage": "compile", "detail": str(exc)}
        for check in verify(project, sims, vectors=vectors, seed=spec["seed"] % 997, progress=lambda *_: None):
            if not check.passed:
                return {**result, "ok": False, "stage": check.check, "detail": check.line()}
    return result


def probe_codes(model, graph, codes: np.ndarray, names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each QuantizeLinear named in ``names``: (the reference's codes of the IR op it closes,
    onnxruntime's codes of its output), both [vectors, elements] in the IR's token order (a
    [1, H, L, X] head tensor is read as L tokens of H x X)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper
    from codegen.ir.reference import dequantize, run_reference

    _, trace = run_reference(graph, codes, trace=True)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    tensors, steps = [], []
    for name in names:
        # the DequantizeLinear after the quantizer: onnxruntime hands out no int4 arrays
        node = nodes[name]
        dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == node.output[0])
        tensors.append(dq.output[0])
        steps.append((float(numpy_helper.to_array(inits[dq.input[1]])),
                      int(numpy_helper.to_array(inits[dq.input[2]])) if len(dq.input) > 2 else 0))
        probe.graph.output.append(helper.make_tensor_value_info(dq.output[0], TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    vectors = len(codes)
    real = dequantize(codes, graph.input_type)
    if graph.channels_first:
        real = real.reshape(vectors, graph.tokens, graph.input_size).transpose(0, 2, 1)
    real = np.ascontiguousarray(real).reshape((vectors, *graph.input_shape[1:]))
    runs = [session.run(tensors, {"x": real[i:i + 1]}) for i in range(vectors)]
    out = {}
    for k, name in enumerate(names):
        op = next(op for op in graph.ops if op.source.split(" + ")[-1] == name)
        if graph.channels_first:   # [1, C, H, W] -> pixel by pixel
            theirs = [r[k].reshape(1, r[k].shape[1], -1).transpose(0, 2, 1) for r in runs]
        else:                      # a head tensor [1, H, L, X] -> L tokens of H x X
            theirs = [r[k].transpose(0, 2, 1, 3) if r[k].ndim == 4 else r[k] for r in runs]
        scale, zero = steps[k]
        real = np.stack([t.reshape(-1) for t in theirs]).astype(np.float64)
        out[name] = (trace[op.outputs[0]], np.rint(real / scale).astype(np.int64) + zero)
    return out


def ir_problem(graph) -> str | None:
    """The first Linear whose accumulator cannot hold its dot products (the hardware wraps)."""
    from codegen.ir.types import bits_for_range, dot_product_range

    for op in graph.ops:
        if not hasattr(op, "acc_type") or not hasattr(op, "weight") or op.weight.ndim != 2:
            continue
        lo, hi = dot_product_range(op.weight, op.bias, op.in_type.min, op.in_type.max)
        acc_bits = op.acc_type.bits if op.acc_type.signed else op.acc_type.bits + 1
        if bits_for_range(min(lo, -1), hi) > acc_bits:
            return (f"{op.name}: accumulator int{acc_bits} cannot hold the dot-product range [{lo}, {hi}] "
                    f"of its input type {op.in_type.describe()}")
    return None
