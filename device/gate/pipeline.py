"""One presentation through the recognition pipeline, every stage timed:

    quality (raw frames) -> calibration (views undistorted, sensor flat-fielded)
    -> regions (K views in parallel through the front end: landmarks -> palm regions +
    quality, segmentation path as fallback) -> sensor (SR x2 + liveness, then the sensor
    frame's hand bound to the views', device.gate.sensor_binding)
    -> feature (cell features of every usable view) -> match (1:N or 1:1, views fused)
    -> decision

Any stage that raises, or runs over its time limit, ends the presentation with a deny and a
reason (``corrupt_frame``, ``quality:<issue>``, ``not_live``, ``sensor_mismatch``,
``liveness_unavailable``,
``no_match``, ``error:<stage>``, ``timeout:<stage>`` ...); nothing here can open the relay --
that is :class:`device.gate.gate.Gate`'s job, and it only acts on ``decision == "open"``.
Python cannot pre-empt a running stage, so a time limit is checked when the stage returns
(camera captures, which can hang, are bounded in :mod:`device.sources.replay`).
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from device.gate.decision import Decision, Deny
from device.gate.front_end_stage import (LandmarkerStage, SegmenterStage,  # noqa: F401
                                         gate_front_end)
from device.gate.sensor_binding import binding_stage
from device.vision.quality import CorruptFrame, QualityIssue, frame_check

log = logging.getLogger("palmgate.gate")

STAGES = ("quality", "calibration", "regions", "sensor", "feature", "match")


class SensorStage:
    """The seed-001 sensor branch, loaded lazily and re-tried after a failure, so a missing or
    tampered model, a manifest without a valid signature, or a configured threshold below the
    signed one denies every presentation (``liveness_unavailable``) and the gate recovers by
    itself once a good file is in place."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.branch = None
        self.error: str | None = None

    def load(self):
        from device.models.model import DEFAULT_MODELS_DIR
        from device.models.sensor_branch import SensorBranch
        c = self.cfg
        try:
            self.branch = SensorBranch(c.liveness.sensor, c.gate.precision,
                                       c.paths.models or DEFAULT_MODELS_DIR,
                                       threads=c.gate.model_threads,
                                       threshold=c.liveness.threshold)
            self.error = None
            if c.liveness.threshold is not None:
                log.warning("liveness threshold %.4g from the configuration (the signed "
                            "manifest's is %.4g)", self.branch.threshold,
                            self.branch.signed_threshold)
        except Exception as e:     # noqa: BLE001 - ModelError, onnxruntime errors, OSError
            self.branch, self.error = None, f"{type(e).__name__}: {e}"
            log.error("liveness models unavailable: %s", self.error)
        return self.branch

    def __call__(self, frame):
        if self.branch is None and self.load() is None:
            raise Deny("liveness_unavailable", "", self.error or "")
        return self.branch(frame)


def gate_feature(cfg, models_dir):
    """The palm feature extractor of ``[match] feature`` (the learned net at [gate] precision)."""
    if cfg.match.feature == "hybrid":
        from device.recognition.hybrid import HybridExtractor
        return HybridExtractor(models_dir, precision=cfg.gate.precision, threads=1)
    from device.recognition.cells import CellExtractor
    return CellExtractor(models_dir)


class Pipeline:
    """Everything between a burst and a decision. ``gallery`` is a ProtectedGallery (or None
    before enrolment); ``threshold`` the match threshold."""

    def __init__(self, cfg, extractor=None, gallery=None, versions=None):
        from device.models.model import DEFAULT_MODELS_DIR
        from device.protect.defaults import DEFAULT_CONFIG, feature_threshold
        from device.gate.calibration_stage import CalibrationStage
        self.cfg = cfg
        # first: a missing, tampered, stale or other-unit calibration file stops the start here
        self.calibration = CalibrationStage(cfg)
        self.extractor = extractor or gate_feature(cfg, cfg.paths.models or DEFAULT_MODELS_DIR)
        self.protect_config = DEFAULT_CONFIG
        self.threshold = cfg.match.threshold if cfg.match.threshold is not None else \
            feature_threshold(cfg.match.feature, cfg.match.far)
        self.sensor = SensorStage(cfg) if cfg.liveness.enabled else None
        self.segmenter = SegmenterStage(cfg) if cfg.gate.segmenter == "net" else None
        self.landmarker = LandmarkerStage(cfg) if cfg.gate.landmarks != "off" else None
        self.front_end = gate_front_end(cfg, self.segmenter, self.landmarker)
        self.binding = binding_stage(cfg, self.calibration, self.segmenter,
                                     lambda f, xs: self.pool.map(f, xs))
        self.gallery = gallery
        self.versions = versions or {}
        self.inactive, self.inactive_reason = None, {}   # users who may not pass now
        from device.gate.split_stage import split_stage
        self.split = split_stage(cfg)          # [split] mode = "split": feature+match on shares
        self.pool = ThreadPoolExecutor(max(1, cfg.gate.threads), thread_name_prefix="regions")

    def close(self):
        self.pool.shutdown(wait=False)
        if self.split is not None:
            self.split.close()

    # ------------------------------------------------------------------ what the loop asks
    def load_gallery(self, store, when: float | None = None) -> None:
        """(Re)build the protected gallery from ``store``: the old one goes first, so the
        two never sit in memory together."""
        from device.gate.gallery import load_gallery
        self.gallery = self.inactive = None
        when = time.time() if when is None else when
        kw = dict(dim=self.extractor.dim, shifts=self.extractor.shifts,
                  shortlist=self.cfg.match.shortlist, storage=self.cfg.match.storage)
        self.gallery, self.versions = load_gallery(
            store, self.protect_config, self.extractor.importance, when=when, **kw)
        # users who may not pass now (disabled, outside their validity or schedule): matched
        # only after a no_match, so their denial says why (user_disabled, outside_schedule)
        why = {u.user_id: "user_disabled" if not u.enabled else "outside_schedule"
               for u in store.users() if not u.active(when)}
        self.inactive_reason = why
        if why:
            self.inactive, _ = load_gallery(store, self.protect_config,
                                            self.extractor.importance,
                                            select=lambda u: u.user_id in why, **kw)

    @property
    def gallery_size(self) -> int:
        """Protected templates in the gallery now."""
        return len(self.gallery or [])

    @property
    def liveness_threshold(self) -> float | None:
        """The sensor branch's p(live) threshold, None while it is not loaded."""
        if self.sensor is None or self.sensor.branch is None:
            return None
        return self.sensor.branch.threshold

    @property
    def liveness_error(self) -> str | None:
        return self.sensor.error if self.sensor is not None else None

    def attach_store(self, store) -> None:
        """Split mode keeps its pending deletes in the store."""
        if self.split is not None:
            self.split.store = store

    # ------------------------------------------------------------------ stages
    def _quality(self, burst, out: Decision):
        if len(burst.views) < self.cfg.gate.min_views:
            raise Deny("quality:few_views", "adjust palm angle",
                       f"{len(burst.views)} views delivered")
        issues = []
        ok = []
        for k, v in enumerate(burst.views):
            try:
                frame_check(v, self.cfg.quality)
                ok.append(k)
            except CorruptFrame as e:
                raise Deny("corrupt_frame", "please present your palm again",
                           f"view {k}: {e}") from None
            except QualityIssue as e:
                issues.append(e)
        if len(ok) < self.cfg.gate.min_views:
            e = issues[0]
            raise Deny(f"quality:{e.reason}", e.prompt, str(e))
        if self.sensor is not None:
            s = burst.sensor
            if not isinstance(s, np.ndarray) or s.ndim not in (2, 3) or s.size == 0 \
                    or s.dtype != np.uint8:
                raise Deny("corrupt_frame", "please present your palm again",
                           "sensor frame missing or not an image")
        return ok

    def calibrate(self, burst, idx=None):
        """The burst with the unit's calibration applied to views ``idx`` (default all) and to
        the sensor frame (:mod:`device.gate.calibration_stage`); enrolment calls it too."""
        return self.calibration.apply(burst, idx)

    def _one_region(self, img):
        try:
            return self.front_end(img), None
        except QualityIssue as e:
            return None, e

    def regions(self, views, idx=None, segmentation: dict | None = None,
                substages: dict | None = None):
        """(first-region ROIs of the views that gave regions, the others' quality issues);
        ``segmentation`` (a dict) counts the acquired views per source (landmarks, net,
        classical); ``substages`` (a dict) sums the views' front-end step times (ms)."""
        idx = list(range(len(views))) if idx is None else idx
        res = list(self.pool.map(self._one_region, [views[k] for k in idx]))
        rois = [r.roi for r, _ in res if r is not None]
        issues = [e for _, e in res if e is not None]
        for r, e in res:
            if r is not None and segmentation is not None:
                segmentation[r.segmentation] = segmentation.get(r.segmentation, 0) + 1
            t = r.timings_ms if r is not None else getattr(e, "timings_ms", {})
            if substages is not None:
                for k, v in t.items():
                    substages[k] = substages.get(k, 0.0) + v
        return rois, issues

    def _regions(self, burst, ok, out):
        rois, issues = self.regions(burst.views, ok, out.segmentation, out.substages_ms)
        out.rois = rois
        if len(rois) < self.cfg.gate.min_views:
            e = issues[0] if issues else QualityIssue("few_views")
            raise Deny(f"quality:{e.reason}", e.prompt, str(e))
        return rois

    def _sensor(self, burst, out):
        pres = self.sensor(burst.sensor)
        out.p_live, out.live, out.sensor_sr = pres.p_live, pres.live, pres.sr
        if not pres.live:
            raise Deny("not_live", "", "p(live) not above the threshold")   # no exact value
        if self.binding is not None:          # the same hand in the sensor frame and the views
            self.binding(burst, out)

    def features(self, rois):
        """Queries (K, S, G, d) of the views' ROIs."""
        return np.stack([self.extractor.query(r) for r in rois])

    def templates(self, rois):
        """Plaintext templates (K, G, d) -- only ever handed to protection at enrolment."""
        return np.stack([self.extractor.template(r) for r in rois])

    def _match(self, queries, claimed, out):
        from device.gate.gallery import fused_search, fused_verify
        if self.gallery is None or len(self.gallery) == 0:
            self._inactive_match(queries, claimed, out)
            raise Deny("no_match", "", "nobody is enrolled")
        if claimed is not None:
            m = fused_verify(self.gallery, queries, claimed, self.threshold)
            if m is None:
                self._inactive_match(queries, claimed, out)
                raise Deny("unknown_user", "", f"claimed id {claimed!r} is not enrolled")
        else:
            m = fused_search(self.gallery, queries, self.threshold,
                             shortlist=self.cfg.match.shortlist)
        out.score, out.threshold, out.user_id = m.score, self.threshold, m.owner
        out.template_version = self.versions.get(m.owner)
        if not m.accepted:
            out.user_id, out.candidate = None, m.owner
            self._inactive_match(queries, None, out)
            raise Deny("no_match")
        return m

    def _inactive_match(self, queries, claimed, out) -> None:
        """After a no_match: the palm of a user who may not pass now denies with that reason
        (``user_disabled``/``outside_schedule``) instead of ``no_match``."""
        from device.gate.gallery import fused_search, fused_verify
        if self.inactive is None or len(self.inactive) == 0:
            return
        if claimed is not None:
            m = fused_verify(self.inactive, queries, claimed, self.threshold)
        else:
            m = fused_search(self.inactive, queries, self.threshold,
                             shortlist=self.cfg.match.shortlist)
        if m is not None and m.accepted:
            out.user_id = m.owner
            raise Deny(self.inactive_reason.get(m.owner, "user_disabled"), "",
                       f"{m.owner!r} matched but may not pass now")

    # ------------------------------------------------------------------ enrolment
    def screen(self, burst) -> list:
        """An enrolment presentation through the gate's own checks -- quality (at least
        ``min_views`` usable views), palm regions, and liveness when ``[liveness] enabled``
        (a missing or failing liveness model refuses, as it denies at the gate). Returns the
        first-region ROIs of the usable views; raises :class:`Deny` with the reason."""
        out = Decision()
        ok = self._quality(burst, out)
        burst = self.calibrate(burst, ok)          # the unit's calibration, as at the gate
        rois = self._regions(burst, ok, out)
        if self.sensor is not None:
            self._sensor(burst, out)
        return rois

    # ------------------------------------------------------------------ the presentation
    def decide(self, burst, claimed: str | None = None) -> Decision:
        t_start = time.perf_counter()
        out = Decision(burst=str(burst.meta.get("burst", "")))
        limits = self.cfg.timeouts
        stage = "quality"

        def timed(name, fn, *a):
            nonlocal stage
            stage = name
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*a)
            finally:
                ms = (time.perf_counter() - t0) * 1e3
                out.stages_ms[name] = ms
                out.stages_cpu_ms[name] = (time.process_time() - c0) * 1e3
                lim = limits[name]
                if ms > lim:
                    raise Deny(f"timeout:{name}", "please present your palm again",
                               f"{name} took {ms:.0f} ms > {lim} ms")

        try:
            ok = timed("quality", self._quality, burst, out)
            if self.calibration.calibrated:
                burst = timed("calibration", self.calibrate, burst, ok)
            rois = timed("regions", self._regions, burst, ok, out)
            out.views_used = len(rois)
            if self.sensor is not None:
                timed("sensor", self._sensor, burst, out)
            if self.split is not None:         # the nodes extract and match on shares
                job = timed("feature", self.split.send, rois, claimed, out)
                timed("match", self.split.match, job, out)
            else:
                q = timed("feature", self.features, rois)
                timed("match", self._match, q, claimed, out)
            out.decision, out.reason = "open", "match"
        except Deny as d:
            out.decision, out.reason, out.prompt = "deny", d.reason, d.prompt
            if d.detail:
                log.info("deny %s: %s", d.reason, d.detail)
        except Exception as e:      # noqa: BLE001 - any failure of any stage is a deny
            out.decision, out.reason = "deny", f"error:{stage}"
            out.prompt = "please present your palm again"
            log.exception("stage %s failed: %s", stage, e)
        out.total_ms = (time.perf_counter() - t_start) * 1e3
        return out
