"""A Brevitas MLP exported with ``brevitas.export.export_qonnx`` (only when brevitas is installed).

Checked with brevitas 0.13.4 on torch 2.13: the export goes through the dynamo exporter and writes
``Quant`` nodes (domain qonnx.custom_op.general, version 2) on the input, the weights and (with
``Int32Bias``) the biases, ``Gemm(transB=1)``, ``Relu`` + unsigned ``Quant``, opset 20.
"""
from __future__ import annotations

import warnings
from pathlib import Path


def export_brevitas_mlp(path: Path, int32_bias: bool = True, seed: int = 0) -> None:
    """QuantIdentity int8 -> QuantLinear(16, 12, 4-bit) -> QuantReLU uint6 -> QuantLinear(12, 5)
    -> QuantIdentity int8, calibrated on a few random batches, written to ``path``."""
    import brevitas.nn as qnn
    import torch
    from brevitas.export import export_qonnx
    from brevitas.quant import Int32Bias

    torch.manual_seed(seed)
    bias_quant = Int32Bias if int32_bias else None
    model = torch.nn.Sequential(
        qnn.QuantIdentity(bit_width=8, return_quant_tensor=True),
        qnn.QuantLinear(16, 12, bias=True, weight_bit_width=4, bias_quant=bias_quant),
        qnn.QuantReLU(bit_width=6, return_quant_tensor=True),
        qnn.QuantLinear(12, 5, bias=True, weight_bit_width=8, bias_quant=bias_quant),
        qnn.QuantIdentity(bit_width=8),
    )
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(32, 16) * 2)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.randn(1, 16), export_path=str(path))


def export_brevitas_residual(path: Path, seed: int = 0) -> None:
    """A Brevitas residual block written by ``export_qonnx``: QuantIdentity int8 -> (QuantLinear
    4-bit -> QuantReLU -> QuantLinear 8-bit) + skip -> QuantIdentity int8 -> QuantLinear head."""
    import brevitas.nn as qnn
    import torch
    from brevitas.export import export_qonnx
    from brevitas.quant import Int32Bias

    class Residual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(16, 16, bias=True, weight_bit_width=4, bias_quant=Int32Bias)
            self.relu = qnn.QuantReLU(bit_width=6, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(16, 16, bias=True, weight_bit_width=8, bias_quant=Int32Bias)
            self.skip_q = qnn.QuantIdentity(bit_width=8)
            self.fc2_q = qnn.QuantIdentity(bit_width=8)
            self.sum_q = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.head = qnn.QuantLinear(16, 6, bias=True, weight_bit_width=8, bias_quant=Int32Bias)

        def forward(self, x):
            x = self.inp(x)
            y = self.fc2(self.relu(self.fc1(x)))
            return self.head(self.sum_q(self.skip_q(x) + self.fc2_q(y)))

    torch.manual_seed(seed)
    model = Residual()
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(torch.randn(32, 16) * 2)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.randn(1, 16), export_path=str(path))
