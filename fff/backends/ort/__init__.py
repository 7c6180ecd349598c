"""ONNX Runtime: the export to ONNX, the session, and the attribution of its profile."""
