"""The ``[liveness]`` keys of the sensor stage's second look (device/gate/second_look.py):
``device.config`` adds them to its ``[liveness]`` section."""
from __future__ import annotations

from device.config_types import Opt

SECOND_LOOK_OPTS = {
    "second_look": Opt(True, "When frame 0 of the sensor is unsure -- denied not_live with its "
                             "p(live) (X-ray: or its p(phantom)) within the signed band of the "
                             "threshold (second_look_band of the liveness / phantom file's "
                             "manifest entry, logit; docs/model-signing.md) -- re-capture the "
                             "sensor twice and decide on the mean logit of the three frames "
                             "against the same signed threshold(s); frame 0 stays the frame "
                             "of every later check, a re-capture without a hand or a failed "
                             "one denies (device/gate/second_look.py). Only where the signed "
                             "manifest has a band; the audit record says second_look=opened "
                             "| denied | failed. false: never (X-ray: no second dose).", bool),
    "second_look_max_band": Opt("", "A narrower second-look band than the signed one (logit, "
                                    "applied to every score's band; empty: the signed bands). "
                                    "A value above the signed band changes nothing: the "
                                    "configuration can only narrow it.", float, min=0.0,
                                max=3.0, nullable=True),
}
