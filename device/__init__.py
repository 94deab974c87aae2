"""PalmGate: the gate application (runtime package; needs only onnxruntime, numpy, OpenCV,
pyserial and cryptography)."""

__version__ = "0.1.0"
