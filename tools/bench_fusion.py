"""``python -m tools.bench_fusion DIR [LABEL]``: CPU and wall ms (medians of 200 calls) of the
gate's view fusion (``HybridExtractor.fuse``, int8, 3 views) and of the view check of 3 views,
on the first 3 images of DIR (a standard-layout ROI folder). Pair it with another checkout by
``farm-bench --vs``; docs/results.md ("Several views")."""
from __future__ import annotations

import sys
import time

import numpy as np


def _median_ms(fn, n: int = 200) -> tuple[float, float]:
    w, c = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        w.append(time.perf_counter() - t0)
        c.append(time.process_time() - c0)
    return 1e3 * float(np.median(w)), 1e3 * float(np.median(c))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from device.config import load_config
    from device.eval.recognition import load_rois
    from device.recognition.hybrid import HybridExtractor
    from device.sources.layout import scan
    rois, _ = load_rois(scan(argv[0])[:3])
    label = argv[1] if len(argv) > 1 else ""
    ex = HybridExtractor(precision="int8", threads=1)
    cells = ex.cells(list(rois))
    w, c = _median_ms(lambda: ex.fuse(cells))
    print(f"{label} fuse 3 views: wall median {w:.3f} ms, cpu median {c:.3f} ms")
    try:
        from device.vision.view_usability import view_check
    except ImportError:             # a checkout without the view check
        return 0
    q = load_config(None).quality
    w, c = _median_ms(lambda: [view_check(r, q) for r in rois])
    print(f"{label} view check 3 views: wall median {w:.3f} ms, cpu median {c:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
