"""Messages several lowering modules give."""

HOW_TO_QUANTIZE = (
    "quantize it first - QDQ format with onnxruntime.quantization.quantize_static(..., "
    "quant_format=QuantFormat.QDQ), QONNX Quant nodes (Brevitas export_qonnx, or qonnx), "
    "fake-quant exported by torch.onnx.export - or pass --default-type fixed<16,6> to quantize the "
    "input, the weights and every layer output to one fixed-point type")
INPUT_NOT_QUANTIZED = (
    "the model's input reaches this layer before any quantizer, while the rest of the model is quantized: "
    "with Brevitas, add a QuantIdentity before the first layer (qnn.QuantIdentity(bit_width=8, "
    "return_quant_tensor=True)); in a QDQ model, put a QuantizeLinear/DequantizeLinear pair on the input "
    "(onnxruntime quantize_static leaves ops it does not quantize, Einsum among them, in float; "
    "quantize_static(..., extra_options={'ForceQuantizeNoInputCheck': True}) quantizes the Reshape "
    "before them and so the input)")
