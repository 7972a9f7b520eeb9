"""einhls: compile compressed neural networks from ONNX to verified FPGA accelerators.

Python API (the same reach as the command line)::

    import codegen as einhls
    project = einhls.compile_model("model.onnx", "out", einhls.CompileOptions(board="pynq-z2"))
    y = project.predict(x, target="reference")   # or "csim" / "rtlsim"
    einhls.verify(project)                        # C-sim and RTL sim against the reference
"""
__version__ = "0.1.0"

from .errors import CheckFailed, EinhlsError  # noqa: E402
# ``verify`` is the package codegen.verify, which is callable (its __init__ says why); importing it
# here keeps ``einhls.verify`` the same object before and after any of its modules is imported.
from . import verify  # noqa: E402


def __getattr__(name: str):
    # heavy imports (torch, onnx) only when the API is used
    if name in ("compile_model", "Project", "CompileOptions"):
        from . import project
        return getattr(project, name)
    raise AttributeError(name)


__all__ = ["compile_model", "Project", "CompileOptions", "verify", "EinhlsError", "CheckFailed"]
