"""Pass/fail limits of each step (defaults here; override with ``--limit NAME=VALUE``) and the
checks that judge a result against them. The limits used are written into the unit's file."""
from __future__ import annotations

import copy

DEFAULT_LIMITS: dict[str, dict[str, float]] = {
    "intrinsics": {
        "max_rms": 0.5,            # px, overall reprojection RMS after dropping outlier views
        "min_views": 6,            # views left after dropping outliers
        "min_coverage": 0.4,       # fraction of an 8x6 grid of image cells holding corners
    },
    "extrinsics": {
        "max_rms": 0.5,            # px, stereo reprojection RMS per camera pair
        "min_pairs": 5,            # simultaneous views used per pair
        "baseline": 0.0,           # expected |T| in board units; 0 = not checked
        "baseline_tol": 0.02,      # relative tolerance on the expected baseline
    },
    "registration": {
        "max_rms": 1.0,            # px, homography residual in the reference view
        "min_points": 20,          # corners seen by both
        "max_view_disagreement_px": 2.0,   # single-frame homographies vs the joint one
    },
    "flatfield": {
        "min_mean_level": 0.2,     # mean signal / full scale
        "max_mean_level": 0.85,
        "max_saturated_fraction": 0.001,
        "min_uniformity": 0.4,     # darkest / brightest smoothed illumination
        "max_residual_nonuniformity": 0.02,
        "max_defect_fraction": 0.001,
        "min_frames": 2,
    },
    "relay": {
        "min_cycles": 1,           # on/off cycles that must succeed
    },
}


def limits_for(step: str, overrides: list[str] | None = None) -> dict[str, float]:
    """The step's defaults with ``NAME=VALUE`` overrides applied (unknown names are errors)."""
    lim = copy.deepcopy(DEFAULT_LIMITS[step])
    for o in overrides or []:
        name, sep, value = o.partition("=")
        name = name.strip()
        if not sep or name not in lim:
            raise ValueError(f"bad --limit {o!r} for step {step}: expected NAME=VALUE with NAME "
                             f"one of {sorted(lim)}")
        try:
            lim[name] = float(value)
        except ValueError:
            raise ValueError(f"bad --limit {o!r}: {value!r} is not a number") from None
    return lim


def check(name: str, value: float, op: str, limit: float, unit: str = "") -> dict:
    ok = {"<=": value <= limit, ">=": value >= limit, "==": value == limit}[op]
    return {"name": name, "value": value, "op": op, "limit": limit, "unit": unit,
            "pass": bool(ok)}


def within(name: str, value: float, expected: float, rel_tol: float, unit: str = "") -> dict:
    ok = abs(value - expected) <= rel_tol * abs(expected)
    return {"name": name, "value": value, "op": "~=", "limit": expected, "rel_tol": rel_tol,
            "unit": unit, "pass": bool(ok)}
