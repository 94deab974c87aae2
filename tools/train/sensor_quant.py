"""Static int8 QDQ quantisation of the sensor-branch models, the operators that run in int8 after
onnxruntime's graph optimisation, and latency measurement.

* ``quantize_int8``: ``quant_pre_process(skip_symbolic_shape=True)`` then ``quantize_static``
  (QDQ, per-channel int8 weights, MinMax calibration on representative sensor frames,
  DepthToSpace added to the quantised op types).  Activations are uint8 by default (U8S8): with
  int8 activations (S8S8) onnxruntime 1.32's x86 CPU provider leaves every Conv that reads the
  graph input in float, with U8S8 the whole SR graph becomes one QuantizeLinear, QLinearConv/
  QLinearAdd/DepthToSpace in int8 and one DequantizeLinear (measured, see ``int8_report``).
  The final Softmax of the liveness model is left in float so p(live) keeps its resolution near
  the threshold.
* ``int8_report``: saves the CPU provider's optimised graph (``SessionOptions.
  optimized_model_filepath``) and lists which nodes consume/produce int8 tensors.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from device.models.ort_session import session_options

_INT8_MOVE_OPS = {"DepthToSpace", "SpaceToDepth", "MaxPool", "Reshape", "Transpose", "Flatten",
                  "Squeeze", "Unsqueeze", "Concat", "Slice", "Resize", "GlobalMaxPool",
                  "Identity"}


SR_FLOAT_NODES = ("/net/reconstruction/",)
"""The SR model's reconstruction stage (the 3x3 conv to 4 sub-pixel planes, the fixed bicubic
base conv, the residual Add, Clip, DepthToSpace) stays in float: quantised, its output carried
about 1 grey level of structured error (rms 0.0044 on NIR frames) that the liveness model read
as print texture -- NIR validation APCER_max and BPCER both went from about 3 % to 24 %.  With
the stage in float the error is rms 0.0003 and the validation rates are unchanged; the feature
extraction and mapping convs (nearly all of the SR arithmetic) still run as QLinearConv."""


def first_conv(path) -> tuple[str, ...]:
    """The name of the model's first Conv node, as a one-element tuple for
    ``exclude_name_parts``.  The liveness model's first conv (high-pass residual filters on the
    SR image, outputs of both signs and a wide range) stays in float: quantised, it moved
    p(live) by a median 1.9 (X-ray) and 0.65 (NIR) in logit units on validation frames and the
    BPCER at the fp32 threshold from 2.6 % to 10.6 % (X-ray); in float the shift is 0.16 / 0.12
    and the validation rates stay within 1 point."""
    import onnx
    for n in onnx.load(str(path)).graph.node:
        if n.op_type == "Conv":
            return (n.name,)
    return ()


LIVENESS_NET_PREFIX = "/net/"
"""Node names of the liveness network inside the exported wrapper; the wrapper's own nodes (the
mirror Slice/Concat on the input, the logit average after the classifier, Softmax) stay in
float: quantising the input Concat would round the SR image to 8 bits, which alone moved the
NIR validation threshold from 0.91 to 0.55 (see sensor_rounds.finetune_block)."""


def quantize_int8(src, dst, frames: list[np.ndarray], input_name: str,
                  exclude_ops=("Softmax",), activations: str = "uint8",
                  exclude_name_parts: tuple[str, ...] = (),
                  only_prefix: str | None = None) -> None:
    """``exclude_ops``: operator types left in float; ``exclude_name_parts``: nodes whose name
    contains one of these strings are left in float too; ``only_prefix``: nodes whose name does
    not start with it are left in float as well."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.registry import QDQRegistry
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{input_name: np.ascontiguousarray(f, np.float32)} for f in frames])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as td:
        pre = Path(td) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        names = [n.name for n in onnx.load(str(pre)).graph.node
                 if n.op_type in exclude_ops or any(k in n.name for k in exclude_name_parts)
                 or (only_prefix is not None and not n.name.startswith(only_prefix))]
        ops = sorted(set(QDQRegistry) | {"Add", "Concat", "DepthToSpace", "GlobalAveragePool",
                                         "GlobalMaxPool", "Softmax"})
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=ops, per_channel=True,
                        activation_type=QuantType.QUInt8 if activations == "uint8"
                        else QuantType.QInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=names,
                        calibrate_method=CalibrationMethod.MinMax)


def optimized_graph(path, threads: int = 1):
    """The graph onnxruntime's CPU provider actually runs (after its optimisations)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as td:
        opt = Path(td) / "optimized.onnx"
        so = session_options(threads)      # the gate's options: exact int8 rewrites too
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(opt)
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return onnx.load(str(opt))


def int8_report(path) -> dict:
    """Which operators of the optimised graph compute in int8 and which in float."""
    import onnx

    g = optimized_graph(path).graph
    int8 = {i.name for i in g.initializer if i.data_type in (onnx.TensorProto.INT8,
                                                             onnx.TensorProto.UINT8)}
    in_int8, in_float, boundary = Counter(), Counter(), Counter()
    for n in g.node:                                    # nodes are topologically sorted
        op = n.op_type
        if op in ("QuantizeLinear", "DynamicQuantizeLinear"):
            int8.update(n.output)
            boundary[op] += 1
        elif op == "DequantizeLinear":
            boundary[op] += 1
        elif op.startswith("QLinear") or op in ("ConvInteger", "MatMulInteger"):
            int8.update(n.output)
            in_int8[op] += 1
        elif op == "QGemm":
            in_int8[op] += 1
            if len(n.input) > 7 and n.input[7]:         # has y_scale: int8 output
                int8.update(n.output)
        elif op in _INT8_MOVE_OPS and n.input and n.input[0] in int8:
            int8.update(n.output)
            in_int8[op] += 1
        else:
            in_float[op] += 1
    return {"int8": dict(in_int8), "float": dict(in_float), "q_dq": dict(boundary)}


def latency_ms(path, feed: dict[str, np.ndarray], threads: int = 1, runs: int = 30,
               warmup: int = 3) -> dict:
    """Median and p95 wall time (ms) of one ``session.run`` on onnxruntime's CPU provider."""
    import onnxruntime as ort

    so = session_options(threads)
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for _ in range(warmup):
        s.run(None, feed)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feed)
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    return {"median": round(statistics.median(ts), 2),
            "p95": round(ts[min(len(ts) - 1, int(0.95 * len(ts)))], 2)}


def session(path, threads: int = 1):
    import onnxruntime as ort

    so = session_options(threads)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
