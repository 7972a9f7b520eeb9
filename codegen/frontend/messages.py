"""Messages several lowering modules give."""

HOW_TO_QUANTIZE = (
    "quantize it first - QDQ format with onnxruntime.quantization.quantize_static(..., "
    "quant_format=QuantFormat.QDQ), QONNX Quant nodes (Brevitas export_qonnx, or qonnx), "
    "fake-quant exported by torch.onnx.export - or pass --default-type fixed<16,6> to quantize the "
    "input, the weights and every layer output to one fixed-point type")
