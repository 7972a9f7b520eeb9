"""Widths of the ap_int values a kernel header builds inside itself (not only its streams):
``AP_INT_MAX_W`` must cover every one of them, or C-sim aborts on the first wider one."""
from __future__ import annotations


def requant_product_bits(acc_bits: int, mult_bits: int, shift: int) -> int:
    """The widest ap_int of einhls::requantize (einhls_requant.h): the product v * m, one spare bit."""
    return max(acc_bits + mult_bits + 1, shift + 1) + 2
