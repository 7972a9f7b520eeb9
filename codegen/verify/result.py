"""Result of one verification check (C-sim, RTL sim, PYNQ sim)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Mismatch:
    vector: int
    element: int
    expected: int
    got: int

    def __str__(self) -> str:
        return (f"first mismatch at vector {self.vector}, element {self.element}: "
                f"expected {self.expected} (reference), got {self.got}")


@dataclass
class CheckResult:
    check: str                      # "csim" | "rtlsim" | "pynqsim"
    vectors: int
    outputs: np.ndarray | None      # [vectors, out_size] codes produced by the design under test
    mismatch: Mismatch | None = None
    error: str | None = None        # the tool failed to build or run (its own message)
    measured: dict = field(default_factory=dict)  # e.g. {"latency_cycles": .., "interval_cycles": ..}

    @property
    def passed(self) -> bool:
        return self.error is None and self.mismatch is None

    def line(self) -> str:
        if self.error and self.error.startswith("STALLED"):
            return f"{self.check}: {self.error}"
        if self.error:
            return f"{self.check}: FAILED to run: {self.error}"
        if self.mismatch:
            return f"{self.check}: MISMATCH on {self.vectors} vectors; {self.mismatch}"
        return f"{self.check}: bit-exact on {self.vectors} vectors"


def compare(check: str, expected: np.ndarray, got: np.ndarray, measured: dict | None = None) -> CheckResult:
    """Element-by-element comparison; the first differing (vector, element) is reported."""
    expected = np.asarray(expected, dtype=np.int64)
    got = np.asarray(got, dtype=np.int64)
    if got.shape != expected.shape:
        return CheckResult(check, expected.shape[0], got, error=f"design produced shape {got.shape}, expected {expected.shape}",
                           measured=measured or {})
    diff = np.argwhere(got != expected)
    mismatch = None
    if diff.size:
        v, e = (int(i) for i in diff[0])
        mismatch = Mismatch(v, e, int(expected[v, e]), int(got[v, e]))
    return CheckResult(check, expected.shape[0], got, mismatch, measured=measured or {})
