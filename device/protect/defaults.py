"""The shipped protection defaults, chosen from the sweep of ``palmgate evaluate-protection
--sweep`` on the 60 held-out Tongji palms (README, "Protected templates"): the seed's fixed-t
slerp with t = 0.9 and 2 of 16 dimensions dropped per cell is the lowest-EER configuration
that drops at least 2 dimensions and meets every target with room (protected EER within 0.3
percentage points of unprotected, D_sys <= 0.1, inversion without the key <= 1 %).

Thresholds are calibrated on *protected* scores (the plaintext ones do not transfer: every
score leans toward 1 as t grows), for the classical cell feature: the smallest score whose
impostor rate was at most the FAR on the same held-out palms (354,000 impostor pairs). A new
feature model or configuration needs a new calibration (``detail.protected.threshold`` in the
evaluation report).
"""
from device.protect.core import ProtectConfig

DEFAULT_CONFIG = ProtectConfig(t=0.9, rotation="fraction", n_drop=2, drop_mode="random",
                               fill="zero", key_mode="per_cell")

DEFAULT_THRESHOLDS = {"1e-3": 0.98330, "1e-4": 0.98435}
