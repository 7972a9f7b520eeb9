"""Benchmark: error of the integer Softmax, LayerNorm and GELU units against the float ops.

    python -m bench.nonlinear_accuracy          # about 30 s on one core

Each unit (codegen/ir/nonlinear.py, the bit-exact definition of the HLS and Verilog units) is run
on quantized inputs that cover its whole input range, and compared with the float op
(torch.softmax, torch.nn.functional.layer_norm, GELU in its erf and tanh forms) applied to the
same dequantized inputs.  Errors are in output steps (units of the output scale); the float result
is clamped to the output type's range first, since saturation belongs to the type and not to the
unit.  "max" and "mean" are |y - float|: correct rounding alone gives up to 0.5.  "off" is the
share of outputs that differ from the correctly rounded float result, "max off" the largest such
difference in steps.

Input sets:
  GELU       every code of the input type, once.
  Softmax    pairs: rows of two elements over every pair of codes (every difference of the range;
             16-bit inputs: 1024 x 1024 codes spread over the range); uniform: 2,000 rows of 128
             uniform codes; attention-like: 2,000 rows of 128 codes from N(0, sigma) for
             sigma = 1, 2, 4 (real units) with a few peaks; peaked: one to four maxima among minima.
  LayerNorm  384 features: 1,000 uniform rows, 1,000 rows of small spread (a few codes, the
             smallest variances), 1,000 Gaussian rows (real std 1), constant and alternating
             extreme rows; gamma ~ U(0.5, 1.5) with a few negative, beta ~ U(-0.5, 0.5).
Writes bench/results/nonlinear_accuracy.json and .md (the table of docs/nonlinear.md).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
sys.path.insert(0, str(ROOT.parent))

from codegen.ir.nonlinear import make_gelu, make_layernorm, make_softmax  # noqa: E402
from codegen.ir.types import QType  # noqa: E402

COMMAND = "python -m bench.nonlinear_accuracy"


def s(bits: int, scale: float, zp: int = 0) -> QType:
    return QType(True, bits, scale, zp)


def u(bits: int, scale: float, zp: int = 0) -> QType:
    return QType(False, bits, scale, zp)


def errors(y: torch.Tensor, real_steps: torch.Tensor, out_type: QType) -> dict:
    ideal = real_steps.clamp(out_type.min, out_type.max)
    err = (y.double() - ideal).abs()
    rounded = torch.round(ideal)           # half to even, like the units; ties are rare
    off = (y.double() - rounded).abs()
    return {"outputs": int(y.numel()), "max": round(float(err.max()), 3), "mean": round(float(err.mean()), 4),
            "off_share": round(float((off > 0).double().mean()), 4), "max_off": int(off.max())}


def quantize(real: torch.Tensor, t: QType) -> torch.Tensor:
    return torch.clamp(torch.round(real / t.scale) + t.zero_point, t.min, t.max).to(torch.int64)


# --- GELU ----------------------------------------------------------------------------------

GELU_CONFIGS = [
    ("int8 (0.05)", s(8, 0.05), "int8 (0.05)", s(8, 0.05)),
    ("int8 (0.1)", s(8, 0.1), "int8 (0.1)", s(8, 0.1)),
    ("uint8 (0.05, zp 100)", u(8, 0.05, 100), "int8 (0.03)", s(8, 0.03)),
    ("int4 (0.5)", s(4, 0.5), "int4 (0.5)", s(4, 0.5)),
    ("int16 (2^-11)", s(16, 2.0 ** -11), "int16 (2^-11)", s(16, 2.0 ** -11)),
]


def gelu_rows() -> list[dict]:
    rows = []
    for in_name, in_type, out_name, out_type in GELU_CONFIGS:
        codes = torch.arange(in_type.min, in_type.max + 1).reshape(1, -1)
        op = make_gelu(codes.shape[1], in_type, out_type)
        y = op.reference(codes)
        for form, label in (("none", "GELU (erf)"), ("tanh", "GELU (tanh)")):
            rows.append({"unit": "gelu", "against": label, "input": in_name, "output": out_name,
                         "inputs": "every code", **errors(y, op.float_reference(codes, form), out_type)})
    return rows


# --- Softmax -------------------------------------------------------------------------------

SOFTMAX_CONFIGS = [
    ("int8 (1/16)", s(8, 1 / 16), "uint8 (1/256)", u(8, 1 / 256)),
    ("int8 (1/4)", s(8, 0.25), "uint8 (1/256)", u(8, 1 / 256)),
    ("int16 (2^-10)", s(16, 2.0 ** -10), "uint8 (1/256)", u(8, 1 / 256)),
    ("int16 (2^-10)", s(16, 2.0 ** -10), "uint16 (2^-16)", u(16, 2.0 ** -16)),
]
ROW = 128


def softmax_inputs(t: QType, gen: torch.Generator) -> dict[str, torch.Tensor]:
    if t.bits <= 8:
        codes = torch.arange(t.min, t.max + 1)
    else:
        codes = torch.linspace(t.min, t.max, 1024).round().to(torch.int64)
    pairs = torch.cartesian_prod(codes, codes)
    uniform = torch.randint(t.min, t.max + 1, (2000, ROW), generator=gen)
    attention = []
    for sigma in (1.0, 2.0, 4.0):
        real = torch.randn((667, ROW), generator=gen, dtype=torch.float64) * sigma
        peaks = torch.randint(0, ROW, (667, 3), generator=gen)
        real.scatter_(1, peaks, (real.abs().max(dim=1, keepdim=True).values + 2 * sigma).expand(-1, 3))
        attention.append(quantize(real, t))
    peaked = torch.full((400, ROW), t.min, dtype=torch.int64)
    for i in range(400):
        peaked[i, torch.randperm(ROW, generator=gen)[:1 + i % 4]] = t.max
    return {"pairs (every difference)": pairs, "uniform rows of 128": uniform,
            "attention-like rows of 128": torch.cat(attention), "peaked rows of 128": peaked}


def softmax_rows() -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(0)
    for in_name, in_type, out_name, out_type in SOFTMAX_CONFIGS:
        for label, x in softmax_inputs(in_type, gen).items():
            op = make_softmax(x.shape[1], in_type, out_type)
            rows.append({"unit": "softmax", "against": "torch.softmax", "input": in_name, "output": out_name,
                         "inputs": label, **errors(op.reference(x), op.float_reference(x), out_type)})
    return rows


# --- LayerNorm -----------------------------------------------------------------------------

LAYERNORM_CONFIGS = [
    ("int8 (0.05)", s(8, 0.05), "int8 (1/32)", s(8, 1 / 32)),
    ("uint8 (0.02, zp 128)", u(8, 0.02, 128), "int8 (1/32)", s(8, 1 / 32)),
    ("int16 (2^-8)", s(16, 2.0 ** -8), "int16 (2^-11)", s(16, 2.0 ** -11)),
]
FEATURES = 384


def layernorm_inputs(t: QType, gen: torch.Generator) -> torch.Tensor:
    uniform = torch.randint(t.min, t.max + 1, (1000, FEATURES), generator=gen)
    centre = torch.randint(t.min + 3, t.max - 2, (1000, 1), generator=gen)
    small = (centre + torch.randint(-3, 4, (1000, FEATURES), generator=gen)).clamp(t.min, t.max)
    gauss = quantize(torch.randn((1000, FEATURES), generator=gen, dtype=torch.float64), t)
    extremes = torch.full((4, FEATURES), t.min, dtype=torch.int64)
    extremes[1] = t.max
    extremes[2, 1::2] = t.max
    extremes[3] = t.zero_point
    return torch.cat([uniform, small, gauss, extremes])


def layernorm_rows() -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(1)
    rng = np.random.default_rng(1)
    gamma = rng.uniform(0.5, 1.5, FEATURES)
    gamma[::37] *= -1
    beta = rng.uniform(-0.5, 0.5, FEATURES)
    for in_name, in_type, out_name, out_type in LAYERNORM_CONFIGS:
        op = make_layernorm(FEATURES, in_type, out_type, gamma, beta, eps=1e-5)
        x = layernorm_inputs(in_type, gen)
        rows.append({"unit": "layernorm", "against": "layer_norm", "input": in_name, "output": out_name,
                     "inputs": "uniform, small-spread, Gaussian and extreme rows of 384",
                     **errors(op.reference(x), op.float_reference(x, gamma, beta, 1e-5), out_type)})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| unit | against | input | output | inputs | outputs | max | mean | off | max off |",
             "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['unit']} | {r['against']} | {r['input']} | {r['output']} | {r['inputs']} | "
                     f"{r['outputs']:,} | {r['max']:.3f} | {r['mean']:.4f} | {100 * r['off_share']:.2f}% | "
                     f"{r['max_off']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    start = time.time()
    rows = gelu_rows() + softmax_rows() + layernorm_rows()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "nonlinear_accuracy.json").write_text(json.dumps(
        {"command": COMMAND, "units": "codegen/ir/nonlinear.py (bit-exact with the HLS and Verilog units)",
         "error_unit": "output steps", "rows": rows}, indent=2) + "\n")
    table = markdown(rows)
    (RESULTS / "nonlinear_accuracy.md").write_text(f"Made by `{COMMAND}`.\n\n" + table)
    print(table)
    print(f"{time.time() - start:.1f} s; wrote {RESULTS / 'nonlinear_accuracy.json'}")


if __name__ == "__main__":
    main()
