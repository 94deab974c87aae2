"""The coarse 1:N pass as one int8 matrix product per block of the gallery.

The coarse index holds, for every template, its key-stripped cells (``ProtectedGallery``'s
identity-bearing part of the protected score) as unsigned bytes: ``code = round(127 x) + 128``
for each entry x in [-1, 1] of a unit cell -- one contiguous (N, G * coarse_dims) uint8 array,
a quarter of float32. The query's S shifted windows, weighted by the cell importances, are
quantised to int8 with one scale for all windows (so the best window is still the best), and

    scores[n] = max_s  sum_j (code[n, j] - 128) * query[j, s]          (int32, exact)

runs as onnxruntime's ``MatMulInteger`` (u8 x s8, zero point 128) followed by ``ReduceMax``
over the windows: the int8 GEMM kernels of onnxruntime's MLAS (AVX2/AVX-512 VNNI on x86, the
dot-product instructions on ARM). The graph has no weights -- it is two operators, built here
as a few bytes of ONNX protobuf (the gate does not ship the ``onnx`` package) -- and it is
not a model file, so the manifest does not list it. Where onnxruntime cannot run it, the same
product runs in numpy (float32, blockwise; identical integers).

The quantisation only orders the shortlist: every shortlisted template gets the exact
protected score in float32.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

log = logging.getLogger(__name__)

ZERO = 128          # the index's zero point: code = round(127 x) + ZERO
BLOCK = 32768       # templates per product: bounds the (block, S) int32 temporary


def index_codes(x: np.ndarray) -> np.ndarray:
    """uint8 codes of values in [-1, 1] (unit-cell entries): round(127 x) + 128."""
    return (np.clip(np.rint(np.asarray(x, np.float32) * 127.0), -127, 127) + ZERO
            ).astype(np.uint8)


QUERY_MAX = 63
"""The query's largest code. x86 CPUs without VNNI run a u8 x s8 product with VPMADDUBSW, which
adds each pair of products into a saturating int16: with the index's codes up to 255, a query
code of 127 can clip (2 x 255 x 127 > 32767) and the product is no longer exact (measured on an
AMD EPYC with AVX2); 2 x 255 x 63 = 32130 fits, so the product is exact on every CPU. The
query is a runtime input, so onnxruntime's exact-int8 option (device/models/ort_session.py),
which rewrites constant weights only, does not reach it."""


def query_codes(q: np.ndarray) -> tuple[np.ndarray, float]:
    """(D, S) int8 codes in [-QUERY_MAX, QUERY_MAX] of the S weighted query windows (S, D),
    one scale for all; returns (codes, scale) with q ~= codes * scale."""
    q = np.asarray(q, np.float32)
    scale = float(np.abs(q).max()) / QUERY_MAX or 1.0
    return np.ascontiguousarray(np.rint(q / scale).astype(np.int8).T), scale


# --------------------------------------------------------------------------- a tiny ONNX graph
def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes | str | int) -> bytes:
    if isinstance(payload, int):
        return _varint(num << 3) + _varint(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _value_info(name: str, elem_type: int, dims) -> bytes:
    shape = b"".join(_field(1, _field(2, d) if isinstance(d, str) else _field(1, d))
                     for d in dims)
    tensor = _field(1, elem_type) + _field(2, shape)
    return _field(1, name) + _field(2, _field(1, tensor))


def coarse_graph() -> bytes:
    """ONNX ModelProto (opset 13): y = ReduceMax(MatMulInteger(a u8 [n, d], b s8 [d, s],
    a_zero_point = 128), axis 1) -> int32 [n]."""
    UINT8, INT8, INT32 = 2, 3, 6
    mm = (_field(1, "a") + _field(1, "b") + _field(1, "zp") + _field(2, "y")
          + _field(4, "MatMulInteger"))
    axes = _field(1, "axes") + _field(20, 7) + _varint(8 << 3) + _varint(1)   # ints [1]
    keep = _field(1, "keepdims") + _field(20, 2) + _field(3, 0)               # int 0
    rm = _field(1, "y") + _field(2, "m") + _field(4, "ReduceMax") + _field(5, axes) \
        + _field(5, keep)
    zp = _field(2, UINT8) + _field(8, "zp") + _field(9, bytes([ZERO]))        # scalar raw
    graph = (_field(1, mm) + _field(1, rm) + _field(2, "coarse") + _field(5, zp)
             + _field(11, _value_info("a", UINT8, ["n", "d"]))
             + _field(11, _value_info("b", INT8, ["d", "s"]))
             + _field(12, _value_info("m", INT32, ["n"])))
    return _field(1, 8) + _field(7, graph) + _field(8, _field(1, "") + _field(2, 13))


class _Session:
    lock = threading.Lock()
    session = None
    failed: str | None = None


def _session():
    if _Session.session is None and _Session.failed is None:
        with _Session.lock:
            if _Session.session is None and _Session.failed is None:
                try:
                    import onnxruntime as ort

                    from device.models.ort_session import session_options
                    so = session_options(1, arena=False)   # no arena kept between searches
                    _Session.session = ort.InferenceSession(
                        coarse_graph(), so, providers=["CPUExecutionProvider"])
                except Exception as e:   # noqa: BLE001 - numpy does the same product
                    _Session.failed = f"{type(e).__name__}: {e}"
                    log.warning("int8 coarse product unavailable in onnxruntime (%s); the "
                                "coarse pass runs in numpy", _Session.failed)
    return _Session.session


def max_products(index: np.ndarray, qcodes: np.ndarray) -> np.ndarray:
    """int32 (N,): max over the S query windows of (index - 128) @ qcodes, for the uint8
    (N, D) index and the int8 (D, S) query codes."""
    n = len(index)
    out = np.empty(n, np.int32)
    if n == 0:
        return out
    sess = _session()
    for lo in range(0, n, BLOCK):
        a = index[lo:lo + BLOCK]
        if sess is not None:
            out[lo:lo + len(a)] = sess.run(None, {"a": a, "b": qcodes})[0]
        else:
            out[lo:lo + len(a)] = np.rint((a.astype(np.float32) - ZERO)
                                          @ qcodes.astype(np.float32)).max(1)
    return out
