"""NIR: a palm the liveness model puts just under its threshold, held for the palm lines.

A presentation whose p(live) lies in the low band [signed ``low_live_floor``, the liveness
threshold) is not denied at the sensor stage: the sensor stage raises :class:`LowLiveDeny` (a
:class:`~device.gate.decision.Deny` ``not_live``, so whoever does not hold it back --
enrolment, split mode, a gate without the identity stage -- denies as before), and the gate
(:meth:`device.gate.pipeline.Pipeline.decide`) holds it while the binding, 1:N and the identity
stage run. The identity stage then asks its lines sum (the identity agreement + the binding's
palm-line agreement, :func:`device.gate.sensor_identity.lines_sum`) to reach the signed
``min_lines_sum_low`` (``Decision.live`` is False: :func:`~device.gate.sensor_identity.
least_lines_sum`). It is released (:func:`released`) when, and only when, the identity stage
checked the identified user and passed; in every other case the presentation is denied with
the held ``not_live``, whatever else denied it after the sensor stage.

Both numbers live in ``models/binding_nir.json``'s ``sensor_identity`` block (signed); a file
without them holds nothing. Strong palm lines are no proof of life on their own -- a print or
screen of the victim's palm shows the victim's lines -- so the band's sum is set above every
validation attack's in and under the band (docs/results.md, "A lower NIR liveness band").
"""
from __future__ import annotations

import math

from device.gate.decision import Deny

RELEASED = "released"
"""``Decision.liveness_band`` (audited) of a presentation opened from the low band."""


class LowLiveDeny(Deny):
    """The sensor stage's ``not_live`` of a presentation in the low band: held by the gate
    until the identity stage has run."""


def band_numbers(si: dict, least: float | None) -> dict:
    """``low_live_floor`` (a p(live) in (0, 1)) and ``min_lines_sum_low`` (in (-2, 2), at
    least ``least``, the file's strictest other lines sum) of a signed ``sensor_identity``
    block, both or neither ({}); ValueError otherwise (``least`` None: the file has no lines
    sum, so no band)."""
    f, k = si.get("low_live_floor"), si.get("min_lines_sum_low")
    if f is None and k is None:
        return {}
    if f is None or k is None or least is None:
        raise ValueError("'sensor_identity' needs 'low_live_floor' and 'min_lines_sum_low' "
                         "together, and 'min_lines_sum' with them")
    if not (_number(f) and 0.0 < f < 1.0):
        raise ValueError("'sensor_identity' 'low_live_floor' must be a p(live) in (0, 1)")
    if not (_number(k) and -2.0 < k < 2.0 and k >= least):
        raise ValueError("'sensor_identity' 'min_lines_sum_low' must be a number in (-2, 2) "
                         "not under the file's other lines sums")
    return {"low_live_floor": float(f), "min_lines_sum_low": float(k)}


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def in_band(p_live, threshold, n: dict | None) -> bool:
    """Whether a presentation of ``p_live`` (not live: under ``threshold``) lies in the signed
    numbers ``n``'s low band, ``low_live_floor <= p_live < threshold`` (pure; never without
    the pair, a p(live) or a threshold)."""
    if not n or n.get("low_live_floor") is None or n.get("min_lines_sum_low") is None:
        return False
    if p_live is None or threshold is None or not math.isfinite(p_live):
        return False
    return n["low_live_floor"] <= p_live < threshold


def released(pending: Deny | None, out) -> bool:
    """Whether the held ``pending`` :class:`LowLiveDeny` is released by the identity stage's
    verdict on ``out``: only when it checked the identified user and passed, the binding's
    palm lines compared (so the band's lines sum was asked)."""
    return isinstance(pending, LowLiveDeny) and bool(getattr(out, "user_id", None)) \
        and getattr(out, "sensor_identity", None) == "checked" \
        and getattr(out, "palm_lines", None) is not None
