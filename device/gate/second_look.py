"""The second look: when frame 0 of the sensor is unsure, the gate re-captures the sensor twice
and decides on the fused score (issue 21, BPCER; docs/sensor-branch.md, "The second look").

Most live hands the sensor stage denies are denied for the *frame* -- a re-capture redraws
exposure, noise and PSF (docs/results.md, "Sensor bursts: frame or content") -- so a gate that
asks again when frame 0's score lies just on the deny side of its threshold keeps attacks out
and lets more live hands in, without tripling every X-ray dose.

When frame 0's sensor stage denies ``not_live`` -- p(live) not above its signed threshold, or
(X-ray) the phantom check refusing -- and that score lies within the signed *band* of its
threshold (in logit: :func:`unsure`), and the burst offers more sensor frames
(``Burst.more_sensor``), the gate takes :data:`EXTRA_FRAMES` more, runs presence, SR and
liveness (and, X-ray, the phantom check) on each, and decides on the mean logit of the three
frames against the same signed threshold(s) (:func:`fused_live`). A re-captured frame without a
hand, a capture that fails or delivers fewer frames, or any error denies (fail secure). Frame 0
stays the frame of the binding, the identity and every later check.

The bands are security numbers: ``second_look_band`` of the liveness file's manifest entry
(p(live)) and of the phantom file's (p(phantom)), covered by the manifest's signature; absent
means 0 (no second look for that score). ``[liveness] second_look = false`` switches it off,
``[liveness] second_look_max_band`` narrows it (a wider value than the signed one changes
nothing). The Decision and the audit record say whether a look was taken and how it ended
(:data:`OPENED`, :data:`DENIED`, :data:`FAILED`); no raw score is audited.
"""
from __future__ import annotations

import logging
import math
from dataclasses import replace

import numpy as np

from device.models.model import ModelError

log = logging.getLogger("palmgate.gate")

EXTRA_FRAMES = 2
"""Sensor frames the second look re-captures (three frames fused with frame 0)."""
OPENED, DENIED, FAILED = "opened", "denied", "failed"
"""How a second look ended: the fused score passed; it did not; a re-capture was missing,
showed no hand, or failed (denied)."""
EPS = 1e-6


def logit(p) -> float:
    """log(p / (1 - p)), p clipped to [1e-6, 1 - 1e-6]; NaN stays NaN."""
    p = float(p)
    if not math.isfinite(p):
        return float("nan")
    p = min(max(p, EPS), 1.0 - EPS)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    if not math.isfinite(z):
        return float("nan")
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def band_in_force(signed: float, enabled: bool = True, max_band: float | None = None) -> float:
    """The band the gate uses: the signed one, narrowed (never widened) by the configuration;
    0.0 when switched off."""
    if not enabled or not signed > 0.0:
        return 0.0
    if max_band is None:
        return float(signed)
    return float(min(signed, max(0.0, float(max_band))))


def unsure(p, threshold: float, band: float, above_denies: bool = False) -> bool:
    """Frame 0's score ``p`` denied by ``threshold`` and within ``band`` logit of it.
    p(live) denies at or below its threshold (``above_denies`` False); p(phantom) above its
    threshold (True). A score that is not a number is never unsure (it stays denied)."""
    if p is None or not band > 0.0:
        return False
    z, t = logit(p), logit(threshold)
    if not math.isfinite(z):
        return False
    d = z - t if above_denies else t - z
    denied = p > threshold if above_denies else not p > threshold
    return bool(denied and d <= band + 1e-12)


def fused_p(ps) -> float:
    """sigmoid of the mean logit of ``ps``; NaN when any is missing or not a number."""
    if not ps or any(p is None for p in ps):
        return float("nan")
    zs = [logit(p) for p in ps]
    if not all(math.isfinite(z) for z in zs):
        return float("nan")
    return sigmoid(float(np.mean(zs)))


def fused_live(p_lives, live_threshold: float, p_phantoms=None,
               phantom_threshold: float | None = None) -> tuple[bool, float, float | None]:
    """(live, fused p(live), fused p(phantom)) of the frames: live iff the mean logit of p(live)
    is above the threshold's logit (strictly) and, where the sensor has a phantom check, the
    mean logit of p(phantom) is not above its threshold's. A missing or NaN score is not live."""
    pl = fused_p(list(p_lives))
    ok = math.isfinite(pl) and pl > live_threshold
    pp = None
    if phantom_threshold is not None:
        pp = fused_p(list(p_phantoms or []))
        ok = ok and math.isfinite(pp) and not pp > phantom_threshold
    return bool(ok), pl, pp


class SecondLook:
    """The sensor stage's second look (:meth:`__call__`), with the signed bands of the loaded
    :class:`device.models.sensor_branch.SensorBranch` narrowed by ``[liveness]``."""

    def __init__(self, cfg):
        self.enabled = bool(cfg.liveness.second_look)
        self.max_band = cfg.liveness.second_look_max_band

    def bands(self, branch) -> tuple[float, float]:
        """(p(live) band, p(phantom) band) in force for ``branch`` (0.0: none)."""
        live = band_in_force(getattr(branch, "second_look_band", 0.0), self.enabled,
                             self.max_band)
        ph = getattr(branch, "phantom", None)
        phb = band_in_force(getattr(ph, "second_look_band", 0.0), self.enabled,
                            self.max_band) if ph is not None else 0.0
        return live, phb

    def wanted(self, branch, pres) -> bool:
        """Frame 0 (``pres``, a ``not_live`` Presentation) is unsure: its denying score within
        its band."""
        if branch is None or pres is None or pres.p_live is None:
            return False
        live_b, ph_b = self.bands(branch)
        if not pres.p_live > branch.threshold:       # p(live) denied
            return unsure(pres.p_live, branch.threshold, live_b)
        ph = getattr(branch, "phantom", None)
        if ph is not None and pres.p_phantom is not None:     # the phantom check refused
            return unsure(pres.p_phantom, ph.threshold, ph_b, above_denies=True)
        return False

    def __call__(self, branch, burst, pres, out, stop=None) -> bool:
        """True when a second look was taken and the fused score is live (``out`` gets the
        fused p(live) / p(phantom)); False otherwise. ``out.second_look`` says how a look
        taken ended; a burst without more frames, or frame 0 outside the bands, leaves the
        decision as it was. ``stop()`` true (the decision gave up on the sensor stage, or its
        time limit passed): no re-capture, the look ends failed (denied)."""
        more = getattr(burst, "more_sensor", None)
        if more is None or not self.wanted(branch, pres):
            return False
        ph = getattr(branch, "phantom", None)
        if ph is not None and pres.p_phantom is None:
            # p(live) denied, so the stage never ran the phantom check on frame 0: frame 0's
            # p(phantom) must not deny outside its own band either (else two clean re-captures
            # could average a clear phantom away); checked before any re-capture (no dose)
            try:
                p0 = phantom_scores(ph, [pres])[0]
                if not math.isfinite(p0):
                    raise ModelError(f"frame 0's p(phantom) is {p0}")
            except Exception as e:     # noqa: BLE001 - a failed phantom check denies
                log.warning("second look failed: %s: %s", type(e).__name__, e)
                out.second_look = FAILED
                return False
            if p0 > ph.threshold and not unsure(p0, ph.threshold, self.bands(branch)[1],
                                                above_denies=True):
                return False            # outside the phantom band: denied as before
            pres = replace(pres, p_phantom=p0)
        try:
            _in_time(stop)
            frames = list(more(EXTRA_FRAMES))
            _in_time(stop)
            shape = np.shape(getattr(burst, "sensor", None))      # frame 0's, as re-captured
            if len(frames) != EXTRA_FRAMES or any(
                    not isinstance(f, np.ndarray) or f.size == 0 or f.dtype != np.uint8
                    or f.shape != shape for f in frames):
                raise ValueError(f"{len(frames)} re-captured frames, {EXTRA_FRAMES} asked, "
                                 f"uint8 of frame 0's shape {shape}")
            res = list(branch.judge(frames))
            if len(res) != EXTRA_FRAMES:
                raise ModelError(f"the sensor stage judged {len(res)} of {EXTRA_FRAMES} frames")
            if any(r.p_live is None or r.sr is None for r in res):    # no hand: denied
                out.second_look = FAILED
                return False
            every = [pres] + res
            pph = None
            if ph is not None:
                pph = phantom_scores(ph, every)
            live, pl, pp = fused_live([r.p_live for r in every], branch.threshold, pph,
                                      None if ph is None else ph.threshold)
        except Exception as e:     # noqa: BLE001 - a failed re-capture or model denies
            log.warning("second look failed: %s: %s", type(e).__name__, e)
            out.second_look = FAILED
            return False
        out.second_look = OPENED if live else DENIED
        if live:
            out.p_live, out.live = pl, True
            out.p_phantom = pp
        return live


def _in_time(stop) -> None:
    """Raise when ``stop()`` says the decision no longer waits for the sensor stage: a
    re-capture then would be a dose (X-ray) and a held sensor thread for nothing."""
    if stop is not None and stop():
        raise TimeoutError("the sensor stage's time is up: no re-capture")


def phantom_scores(check, presentations) -> list:
    """p(phantom) of every presentation's SR image (the ones the stage did not check yet
    checked now)."""
    todo = [k for k, r in enumerate(presentations) if r.p_phantom is None]
    got = {}
    if todo:
        p = np.asarray(check(np.stack([presentations[k].sr for k in todo]))).reshape(-1)
        if p.size != len(todo):
            raise ModelError(f"the phantom check gave {p.size} scores for {len(todo)} images")
        got = {k: float(v) for k, v in zip(todo, p)}
    return [got.get(k, r.p_phantom) for k, r in enumerate(presentations)]
