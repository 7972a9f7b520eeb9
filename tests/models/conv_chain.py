"""Tucker-decomposed 3x3 convolutions written factor by factor in Brevitas with weight quantizers
only (``QuantConv2d``'s default: no input or output quantizer), so nothing rounds between the
factors: an 8-bit quantizer in front, 4-bit per-tensor weights on the 1x1, 3x3 and 1x1 factors, an
8-bit quantizer behind; exported as QONNX, seeded.  The factor outputs are exact integers of one
scale, which is what lets einhls rebuild the kernel (codegen/passes/conv_chain.py)."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn


def tucker_chain(c_in: int, c_out: int, rank_in: int, rank_out: int) -> nn.Module:
    import brevitas.nn as qnn

    class TuckerChain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=False)
            self.first = qnn.QuantConv2d(c_in, rank_in, 1, bias=False, weight_bit_width=4)
            self.core = qnn.QuantConv2d(rank_in, rank_out, 3, padding=1, bias=False, weight_bit_width=4)
            self.last = qnn.QuantConv2d(rank_out, c_out, 1, bias=False, weight_bit_width=4)
            self.out = qnn.QuantIdentity(bit_width=8)

        def forward(self, x):
            return self.out(self.last(self.core(self.first(self.inp(x)))))

    return TuckerChain()


#: name -> (c_in, c_out, rank_in, rank_out), all on 6x6 pixels.  Low rank: the chain is the cheaper;
#: ranks above the channels (an over-parameterized factorization): the rebuilt 8 x 8 x 3 x 3 kernel is
MODELS = {
    "tucker_low_rank": (8, 16, 4, 6),
    "tucker_wide_rank": (8, 8, 16, 16),
}
SHAPE = (6, 6)


def build(name: str, path: Path, seed: int = 0) -> tuple[Path, nn.Module]:
    """Export model ``name`` as QONNX; returns the path and the Brevitas module (eval mode)."""
    from brevitas.export import export_qonnx
    c_in, c_out, rank_in, rank_out = MODELS[name]
    torch.manual_seed(seed)
    model = tucker_chain(c_in, c_out, rank_in, rank_out).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(model, torch.randn(1, c_in, *SHAPE), export_path=str(path))
    return path, model
