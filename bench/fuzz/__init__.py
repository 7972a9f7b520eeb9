"""Differential fuzzing of the whole compiler: random valid models (bench/fuzz/forms.py) through
onnxruntime, the integer reference, C-sim and RTL sim (bench/fuzz/check.py).

    make fuzz N=200 SEED=1 JOBS=2 TARGETS=ort,csim,rtlsim
    python -m bench.fuzz --n 200 --seed 1 --jobs 2 --targets ort

Failing models are shrunk to small ones and written with their spec and a reproducer command
under bench/results/fuzz/ (see ``python -m bench.fuzz --help``).
"""

from . import forms_attention, forms_conv, forms_qonnx_conv  # noqa: F401  (their forms register on import)
