"""The shipped protection defaults, chosen on validation data only (200 synthetic palms of
``device.synth palms --seed 31`` and the 60 held-out Tongji validation palms; README,
"Protected templates"):

- ``rotation="equal_distance"``, t = 0.9: a slerp toward the key whose weight is chosen per
  sub-feature so that every sub-feature lands 9 deg ((1 - t) * 90 deg) from its key, on the
  great circle through the feature and the key (the Slerp rotation of claim 5, weight in
  [0, 1]). The patent's fixed-fraction Slerp (seed 002) lands a sub-feature at
  (1 - t) * theta with theta its own angle to a random key, which reweights the cells at
  random per template and costs accuracy (2.5 pp EER on synthetic palms); landing every cell
  at the same angle makes the protected cell cosine an affine function of the feature's
  cosine about the key.
- importance-driven drop counts (claim 6): 25 dimensions over the 49 cells, fewer for the
  more important cells (here: one dimension in each of the 25 least important cells, none in
  the rest).
- ``fill="key"``: the dropped positions take the key's own (random) entries (claim 7), which
  keeps each cell's norm independent of which entries were dropped.
- one key per cell (claim 4 i).

Measured with this default (cross-session, several enrolment seeds): protected EER within
0.2 pp of unprotected on both sets (cells and the learned feature), D_sys <= 0.09, inversion
with the key unknown 0 %; with the key known the key strip still inverts every template, as
the seed's appendix says, which is why the store seals every record.

Thresholds are calibrated on *protected* scores of this configuration (a score depends on
it), for the classical cell feature: the smallest score whose impostor rate was at most the
FAR on the Tongji validation palms (354,000 impostor pairs). A new feature model or
configuration needs a new calibration (``detail.protected.threshold`` in the evaluation
report).
"""
from device.protect.core import ProtectConfig

DEFAULT_CONFIG = ProtectConfig(t=0.9, rotation="equal_distance", n_drop=1,
                               drop_mode="importance", drop_total=25, fill="key",
                               key_mode="per_cell")

DEFAULT_THRESHOLDS = {"1e-3": 0.98401, "1e-4": 0.98486}
# per gate feature ([match] feature); hybrid: the same rule on the protected scores of the
# gate's real capture -- 3 views fused into one query against 3-view fused templates, int8 --
# on the 40 fusion-validation Tongji palms, impostor pairs of one clean and five degraded runs
# pooled (84,240; each run its own keys). The earlier one-view values (0.98290 / 0.98372) let
# 5-7 times the FAR through for fused captures (docs/results.md, "Several views"). Re-chosen
# by the same rule when the views were first aligned on the cell grid (fuse3; 0.98334 / 0.98424
# before, which then let 96 and 9 of the 84,240 pairs through).
FEATURE_THRESHOLDS = {"cells": DEFAULT_THRESHOLDS, "hybrid": {"1e-3": 0.98339, "1e-4": 0.98425}}


def feature_threshold(feature: str, far: str) -> float:
    """The shipped protected-score threshold of ``feature`` at false-accept rate ``far``."""
    if feature not in FEATURE_THRESHOLDS:
        raise ValueError(f"unknown feature {feature!r}; choose one of "
                         f"{sorted(FEATURE_THRESHOLDS)}")
    return FEATURE_THRESHOLDS[feature][far]
