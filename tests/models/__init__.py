"""Small model builders for the front-end tests (each writes an ONNX file; nothing large is stored)."""
