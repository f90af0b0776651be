"""Active-speaker detection per face track: offline lip motion vs speech, reference ONNX contract."""
