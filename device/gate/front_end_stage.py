"""The gate's palm front end as configured (``[gate] landmarks``, ``segmenter``, ``precision``,
``landmark_precision``, ``[quality]``): the two model stages it asks -- the hand-landmark network and the hand
segmentation network -- each loaded lazily, logged and re-tried every minute when its file is
missing or tampered (the front end falls back meanwhile), and :func:`gate_front_end`, the one
:class:`device.vision.front_end.FrontEnd` that the gate, ``palmgate evaluate --level hand`` and
``palmgate bench`` all run.
"""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("palmgate.gate")

FOUND_LANDMARKS = {"xray": True, "nir": True}
"""Per ``[liveness] sensor``: whether a view keeps the landmarks its landmark network found
when only their palm region's image check (exposure, sharpness, motion blur) refused them and
the classical path gave the view's regions (:attr:`device.vision.regions.HandRegions.
found_landmarks`), so the sensor binding places the hand with every view that saw it. X-ray:
on -- a defect fix (a hand the network found was not placed: development seed 8017, 2 of 400
live hands), neutral on validation 9317 and 23, which hold no such hand (docs/results.md
"The X-ray binding's live-hand denials on 8017"). NIR: on since branch nmm17 -- the same
defect (development 8837 00181, 8019 00077, 9173 00514 / 00776); off before because on
validation 9317 it let one mixed_replica_views presentation through the binding (branch
nbind), which the hand-size check now denies: by nmm17's rule, on validation 9317 (int8 and
fp32, every class, the gate's decisions) no attack opened and no bona fide denied that were not
before, and on development 9173 2 live hands opened for 1 (int8) / 0 (fp32) denied
(docs/results.md "NIR 9173's live hands denied ...")."""


class _ModelStage:
    """A model loaded on first use (one loader at a time: the region threads ask together); a
    failure is logged and re-tried after ``RETRY_S``."""

    RETRY_S = 60.0
    what = "model"

    def __init__(self, cfg):
        self.cfg = cfg
        self.model = None
        self.error: str | None = None
        self._tried = -self.RETRY_S
        self._lock = threading.Lock()

    def _load(self, models_dir):             # pragma: no cover - overridden
        raise NotImplementedError

    def get(self):
        if self.model is not None:
            return self.model
        with self._lock:
            if self.model is None and time.monotonic() - self._tried >= self.RETRY_S:
                from device.models.model import DEFAULT_MODELS_DIR
                try:
                    self.model = self._load(self.cfg.paths.models or DEFAULT_MODELS_DIR)
                    self.error = None
                except Exception as e:     # noqa: BLE001 - ModelError, onnxruntime errors
                    self.error = f"{type(e).__name__}: {e}"
                    log.error("%s unavailable, using the fallback: %s", self.what,
                              self.error)
                self._tried = time.monotonic()
        return self.model


def landmark_precision(cfg) -> str:
    """The hand-landmark network's precision: ``[gate] landmark_precision``, where ``gate``
    means ``[gate] precision``."""
    lp = cfg.gate.landmark_precision
    return cfg.gate.precision if lp == "gate" else lp


class SegmenterStage(_ModelStage):
    """The hand segmentation network of the fast palm-region path (models/hand_seg*.onnx at
    the gate's precision). A missing or tampered file is logged and the regions step falls
    back to the classical segmentation (slower, same decisions); the file is tried again every
    minute, so the gate recovers by itself once a good file is in place."""

    what = "hand segmentation model"

    def _load(self, models_dir):
        from device.vision.segmentation import NetSegmenter
        return NetSegmenter(self.cfg.gate.precision, models_dir, threads=1)

    @property
    def segmenter(self):
        return self.model


class LandmarkerStage(_ModelStage):
    """The hand-landmark network (models/hand_landmark[_lite][_int8].onnx: ``[gate]
    landmarks`` at :func:`landmark_precision`). Missing or tampered: logged, the front end runs the
    segmentation path alone, the file is tried again every minute."""

    what = "hand landmark model"

    def _load(self, models_dir):
        from device.vision.landmarks import Landmarker
        return Landmarker(self.cfg.gate.landmarks, landmark_precision(self.cfg), models_dir,
                          threads=1, min_presence=self.cfg.quality.min_presence)

    @property
    def landmarker(self):
        return self.model


def gate_front_end(cfg, segmenter: SegmenterStage | None = None,
                   landmarker: LandmarkerStage | None = None, check_quality: bool = True):
    """The front end of ``cfg`` over the given stages (None: that model is not used)."""
    from device.vision.front_end import FrontEnd, Getter
    return FrontEnd(cfg.quality,
                    landmarker=Getter(landmarker.get) if landmarker is not None else None,
                    segmenter=Getter(segmenter.get) if segmenter is not None else None,
                    check_quality=check_quality,
                    nir_landmarks_first=cfg.gate.nir_order == "landmarks-first",
                    keep_found_landmarks=FOUND_LANDMARKS.get(cfg.liveness.sensor, False))


def front_end_from_config(cfg, check_quality: bool = True):
    """(front end, segmenter stage or None, landmarker stage or None) as the gate builds
    them from ``cfg``."""
    seg = SegmenterStage(cfg) if cfg.gate.segmenter == "net" else None
    lmk = LandmarkerStage(cfg) if cfg.gate.landmarks != "off" else None
    return gate_front_end(cfg, seg, lmk, check_quality), seg, lmk
