"""Training and export (needs the ``train`` extra: torch and onnx). Never imported on the gate."""
