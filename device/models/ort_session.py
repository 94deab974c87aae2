"""onnxruntime session options every int8 model of the gate runs with.

The int8 files are QDQ with uint8 activations and int8 weights (U8S8). On x86 CPUs with
SSE4.1/AVX2/AVX-512 but without VNNI, onnxruntime's MLAS runs U8S8 products with VPMADDUBSW,
which adds each pair of u8 x s8 products into a *saturating* int16: 2 x 255 x 127 does not fit,
so a product can come out clipped and the network's output moves with the CPU it runs on
(measured 2026-12-07 on an AMD EPYC with AVX2 and no VNNI: the int8 presence check scored
three hand frames of the shipped test set under its threshold, and the int8 demo decided two
presentations wrongly, where a VNNI CPU and the ARM board decide them right).
``session.x64quantprecision`` = 1 makes onnxruntime rewrite the int8 weights to uint8 and run
the exact U8U8 kernels on such CPUs only (onnxruntime's session option
``kOrtSessionOptionsAvx2PrecisionMode``); VNNI and ARM CPUs are exact either way, so every CPU
gives the thresholds' CPU's numbers. The model files are unchanged.
"""
from __future__ import annotations

EXACT_INT8 = ("session.x64quantprecision", "1")
"""The session config entry for exact u8 x s8 products on x86 CPUs without VNNI."""


def session_options(threads: int = 0, arena: bool = True):
    """``onnxruntime.SessionOptions`` with exact int8 products; ``threads`` > 0 sets the
    intra-op threads (and one inter-op thread); ``arena`` the CPU memory arena."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.add_session_config_entry(*EXACT_INT8)
    so.enable_cpu_mem_arena = bool(arena)
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return so
