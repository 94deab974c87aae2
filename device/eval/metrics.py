"""Verification metrics named as in ISO/IEC 19795-1 (pure numpy; scores: higher = more alike)."""
from __future__ import annotations

import numpy as np


def _as_float(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("need at least one score")
    return a


def eer(genuine, impostor) -> float:
    """Equal error rate: where the false non-match rate meets the false match rate.

    Evaluated at every distinct score as threshold (accept when score >= threshold) and
    interpolated linearly between the two thresholds where FNMR - FMR changes sign.
    """
    g, i = np.sort(_as_float(genuine)), np.sort(_as_float(impostor))
    thr = np.unique(np.concatenate([g, i, [np.inf]]))
    fnmr = np.searchsorted(g, thr, side="left") / g.size       # genuine below threshold
    fmr = 1.0 - np.searchsorted(i, thr, side="left") / i.size  # impostor at/above threshold
    d = fnmr - fmr
    k = int(np.argmax(d >= 0))
    if k == 0:
        return float((fnmr[0] + fmr[0]) / 2)
    d0, d1 = d[k - 1], d[k]
    w = 0.0 if d1 == d0 else -d0 / (d1 - d0)
    return float((1 - w) * (fnmr[k - 1] + fmr[k - 1]) / 2 + w * (fnmr[k] + fmr[k]) / 2)


def threshold_at_far(impostor, far: float) -> float:
    """Smallest threshold whose false match rate is at most ``far`` (accept: score >= thr)."""
    i = np.sort(_as_float(impostor))[::-1]
    allowed = int(np.floor(far * i.size))  # impostors that may score at/above threshold
    if allowed >= i.size:
        return float(i[-1])
    # threshold strictly above the (allowed+1)-th highest impostor
    return float(np.nextafter(i[allowed], np.inf))


def tar_at_far(genuine, impostor, far: float) -> float:
    """True accept rate at the threshold whose false match rate is at most ``far``."""
    g = _as_float(genuine)
    return float(np.mean(g >= threshold_at_far(impostor, far)))


def d_prime(genuine, impostor) -> float:
    """Decidability index d' = |mu_g - mu_i| / sqrt((var_g + var_i) / 2)."""
    g, i = _as_float(genuine), _as_float(impostor)
    return float(abs(g.mean() - i.mean()) / np.sqrt((g.var() + i.var()) / 2 + 1e-300))


def frr_at_far(genuine, impostor, far: float) -> float:
    """False reject rate (FNMR) at the threshold whose false match rate is at most ``far``."""
    return 1.0 - tar_at_far(genuine, impostor, far)


def verification_summary(genuine, impostor, fars=("1e-3", "1e-4", "1e-5"),
                         frr_fars=("1e-4",)) -> dict:
    """EER, TAR at each FAR of ``fars``, FRR at each of ``frr_fars``, with the numbers of
    pairs. A FAR below 1 / n_impostor cannot be resolved: ``far_floor`` says where that is."""
    g, i = _as_float(genuine), _as_float(impostor)
    return {"eer": eer(g, i),
            "tar": {f: tar_at_far(g, i, float(f)) for f in fars},
            "frr": {f: frr_at_far(g, i, float(f)) for f in frr_fars},
            "n_genuine": int(g.size), "n_impostor": int(i.size),
            "far_floor": 1.0 / i.size}
