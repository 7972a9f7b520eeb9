"""PyTorch modules that export to the ONNX forms einhls compiles (TT, low-rank, butterfly)."""
