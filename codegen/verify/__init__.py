"""Verification against the PyTorch integer reference: C-sim, RTL sim, PYNQ sim, Yosys.

The package itself is callable: ``codegen.verify(project, checks, vectors, seed)`` is
:func:`codegen.verify.runner.verify`.  The README's API is ``import codegen as einhls;
einhls.verify(project)``, and Python sets the attribute ``codegen.verify`` to this package as soon
as any of its modules is imported, so the package has to be the API function's equal rather than
hide it.
"""
from __future__ import annotations

import sys
import types


class _CallablePackage(types.ModuleType):
    def __call__(self, project, checks: tuple[str, ...] = ("csim", "rtlsim"), vectors: int = 64, seed: int = 1,
                 progress=print) -> list:
        """Run each check on the stored vectors plus ``vectors`` random ones against the PyTorch
        integer reference; one CheckResult per check (see :func:`codegen.verify.runner.verify`)."""
        from .runner import verify   # torch: only when called
        return verify(project, checks, vectors, seed, progress)


sys.modules[__name__].__class__ = _CallablePackage
