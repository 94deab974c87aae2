"""One presentation through the recognition pipeline, every stage timed, on two threads:

    quality (raw frames) -> calibration (views undistorted, sensor flat-fielded), then
    main thread:  regions (K views in parallel through the front end: landmarks -> palm
                  regions + quality, segmentation path as fallback) -> feature (cell features
                  of every usable view, fused) -> match (1:N or 1:1) -> identity (NIR: the
                  sensor frame against the identified person's sensor templates, once the
                  sensor chain passed; device.gate.sensor_identity_stage)
    sensor thread: sensor (is there a hand? -> SR x2 + liveness) -> binding (the sensor
                  frame's hand bound to the views', device.gate.sensor_binding)
    -> decision

The sensor chain needs only the calibrated burst, so it runs beside the regions, feature and
match (onnxruntime and OpenCV release the GIL; on two cores the presentation costs about its
CPU time over two). The decision is the one of running the stages in sequence -- quality,
calibration, regions, sensor, binding, feature, match: the first stage in that order that
denies gives the reason, and what a later stage found (a match, p(live)) is dropped, so a
presentation denied by liveness carries no match. The binding starts only after the sensor
stage passed and is skipped once the presentation is already denied; feature and match are
skipped when the sensor chain has already denied. In split mode the nodes are asked only after
the sensor chain passed (as before: an attack never reaches them).

Any stage that raises, or runs over its time limit, ends the presentation with a deny and a
reason (``corrupt_frame``, ``quality:<issue>``, ``no_hand_in_sensor``, ``not_live``,
``sensor_mismatch``, ``liveness_unavailable``, ``no_match``, ``sensor_identity``, ``error:<stage>``, ``timeout:<stage>`` ...); nothing here can open the relay --
that is :class:`device.gate.gate.Gate`'s job, and it only acts on ``decision == "open"``.
Python cannot pre-empt a running stage, so a time limit is checked when the stage returns; the
main thread waits for the sensor chain at most its two limits (else ``timeout:<stage>``) and
camera captures, which can hang, are bounded in :mod:`device.sources.replay`.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np

from device.gate.decision import Decision, Deny
from device.models.presence import NO_HAND
from device.models.sensor_branch import NOT_LIVE
from device.gate.front_end_stage import (LandmarkerStage, SegmenterStage,  # noqa: F401
                                         gate_front_end)
from device.gate.binding_release import RELEASED, IdentifiedDeny, SizeTermDeny, released
from device.gate.second_look import SecondLook
from device.gate.sensor_binding import binding_stage
from device.gate.sensor_identity_stage import identity_stage
from device.gate.stage_clock import StageClock, cpu_map, critical_path
from device.vision.front_end import hand_landmarks
from device.vision.quality import CorruptFrame, QualityIssue, frame_check
from device.vision.view_usability import usable_rois

log = logging.getLogger("palmgate.gate")

STAGES = ("quality", "calibration", "regions", "sensor", "binding", "feature", "match",
          "identity")
"""The stages in decision order: the first of them that denies gives the reason."""
MAIN_CHAIN = ("quality", "calibration", "regions", "feature", "match", "identity")
SENSOR_CHAIN = ("quality", "calibration", "sensor", "binding")
MATCH_FIELDS = ("rois", "score", "threshold", "user_id", "candidate", "template_version")
"""What the feature and match stages write into the Decision (dropped when the sensor chain
denies)."""
SENSOR_FIELDS = ("sensor_sr", "p_live", "live", "p_phantom", "binding", "palm_lines",
                 "sensor_probes", "second_look")
REGION_FIELDS = ("rois", "segmentation", "views_used", "landmarks")
"""What the regions stage found, handed to the sensor chain's Decision once the regions passed:
a binding stage with ``needs_regions = True`` waits for them (and is skipped when the regions
deny); one without starts as soon as the sensor stage passed."""


class SensorStage:
    """The seed-001 sensor branch with its presence check, loaded lazily and re-tried after a
    failure, so a missing or tampered model (presence, SR or liveness), a manifest without a
    valid signature, or a configured threshold below the signed one denies every presentation
    (``liveness_unavailable``) and the gate recovers by itself once a good file is in place.

    ``stage(frame)`` runs :meth:`SensorBranch.judge` -- the same function
    ``palmgate evaluate-liveness`` scores with: presence, then SR and liveness (the binding
    is its own stage, :mod:`device.gate.sensor_binding`)."""

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
        self.second_look = SecondLook(cfg)     # frame 0 unsure: the sensor re-captured
        self.segmenter = SegmenterStage(cfg) if cfg.gate.segmenter == "net" else None
        self.landmarker = LandmarkerStage(cfg) if cfg.gate.landmarks != "off" else None
        self.front_end = gate_front_end(cfg, self.segmenter, self.landmarker)
        self.binding = binding_stage(cfg, self.calibration)
        self.identity = identity_stage(cfg)    # NIR: the sensor frame against the person's
        self.gallery = gallery
        self.versions = versions or {}
        self.inactive, self.inactive_reason = None, {}   # disabled users
        self.users, self.holidays = {}, frozenset()      # schedules, site holidays
        self.marks = None                    # the store's row marks the galleries were read at
        self.row_tags = None                 # and their rows' tags (device.store.row_tags)
        self.clock = time.time                            # the gate's clock (UNIX time)
        from device.gate.split_stage import split_stage
        self.split = split_stage(cfg)          # [split] mode = "split": feature+match on shares
        self.pool = ThreadPoolExecutor(max(1, cfg.gate.threads), thread_name_prefix="regions")
        # the sensor chain (sensor -> binding) beside the regions, feature and match
        self.side = ThreadPoolExecutor(1, thread_name_prefix="sensor")

    def close(self):
        self.pool.shutdown(wait=False)
        self.side.shutdown(wait=False)
        if self.split is not None:
            self.split.close()

    # ------------------------------------------------------------------ what the loop asks
    def load_gallery(self, store, when: float | None = None) -> None:
        """(Re)build the protected galleries from ``store`` (one snapshot): the old ones go
        first, so the two never sit in memory together. The gallery holds every enabled
        user: whether they may pass now (validity, weekly zones, holidays) is decided at each
        presentation on the gate's clock (:meth:`_access`), so a zone that opens or closes
        needs no reload. ``when`` is kept for callers; the schedule is not applied here.
        After another process's commit the gate patches them instead
        (:mod:`device.gate.gallery_refresh`)."""
        from device.gate.gallery_refresh import load_full
        load_full(self, store)

    def _access(self, out) -> None:
        """The matched user's validity window, weekly zones and the site's holidays at this
        moment of the gate's local clock: a deny with its reason (``not_yet_valid``,
        ``expired``, ``holiday``, ``outside_schedule``). A user the store has no record of
        (split mode keeps templates on the nodes) has no schedule."""
        u = self.users.get(out.user_id) if out.user_id else None
        if u is None:
            return
        reason = u.access(self.clock(), self.holidays)
        if reason is not None:
            raise Deny(reason, "", f"{out.user_id!r} matched but may not pass now")

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
        """Why the sensor stage, or the binding's signed numbers, cannot be used (None: fine)."""
        if self.sensor is not None and self.sensor.error:
            return self.sensor.error
        b = getattr(self.binding, "error", None)
        if b:
            return f"sensor binding: {b}"
        i = getattr(self.identity, "error", None)
        return f"sensor identity: {i}" if i else None

    def attach_store(self, store) -> None:
        """Split mode keeps its pending deletes in the store; the identity stage reads the
        identified person's sensor templates from it."""
        if self.split is not None:
            self.split.store = store
        if self.identity is not None:
            self.identity.attach(store)

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
                substages: dict | None = None, landmarks: dict | None = None):
        """(first-region ROIs of the views that gave regions, the others' quality issues);
        ``segmentation`` (a dict) counts the acquired views per source (landmarks, net,
        classical); ``substages`` (a dict) sums the views' front-end step times (ms);
        ``landmarks`` (a dict) gets view index -> its (21, 2) hand landmarks where the regions
        came from them or kept them (X-ray, :func:`device.vision.front_end.hand_landmarks`;
        the sensor binding's input)."""
        idx = list(range(len(views))) if idx is None else idx
        res = list(cpu_map(self.pool, self._one_region, [views[k] for k in idx]))
        if landmarks is not None:
            found = {k: hand_landmarks(r) for k, (r, _) in zip(idx, res) if r is not None}
            landmarks.update({k: v[:, :2] for k, v in found.items() if v is not None})
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
        rois, issues = self.regions(burst.views, ok, out.segmentation, out.substages_ms,
                                    out.landmarks)
        rois, issues = usable_rois(rois, issues, self.cfg.quality)   # before the fusion
        out.rois = rois
        if len(rois) < self.cfg.gate.min_views:
            e = issues[0] if issues else QualityIssue("few_views")
            raise Deny(f"quality:{e.reason}", e.prompt, str(e))
        return rois

    def _sensor(self, burst, out, stop=None):
        """Presence, SR and liveness of the sensor frame (the binding is its own stage);
        ``stop()``: the decision no longer waits (no second look's re-capture then)."""
        pres = self.sensor(burst.sensor)
        out.sensor_sr = pres.sr
        if pres.p_live is not None:             # liveness ran
            out.p_live, out.live = pres.p_live, pres.live
            out.p_phantom = getattr(pres, "p_phantom", None)
        if pres.reason == NO_HAND:
            raise Deny(NO_HAND, "place your palm on the sensor", pres.detail)
        if pres.reason is not None and pres.reason != NOT_LIVE:    # another check's reason
            raise Deny(pres.reason, "please present your palm again", pres.detail)
        # frame 0 unsure: the sensor re-captured (device.gate.second_look)
        if not pres.live and not self.second_look(self.sensor.branch, burst, pres, out, stop):
            # no exact value; the phantom check's own detail where it refused
            raise Deny(NOT_LIVE, "", pres.detail or "p(live) not above the threshold")

    def view_cells(self, rois):
        """(K, S, G, d) cells of each view, the views on the region threads (OpenCV's filters
        and onnxruntime release the GIL)."""
        rois = list(rois)
        if not rois:
            raise ValueError("empty view set: a palm feature needs at least one view")
        if len(rois) == 1 or self.cfg.gate.threads < 2:
            return self.extractor.cells(rois)
        return np.concatenate(list(cpu_map(self.pool, lambda r: self.extractor.cells([r]),
                                           rois)))

    def features(self, rois):
        """The presentation's query, (1, S, G, d): its K views fused into one palm feature
        (seed 000: the learned cells through the attention fusion, the classical cells by
        their per-cell mean), so 1:N costs one comparison per template."""
        return self.extractor.fuse(self.view_cells(rois))[None]

    def templates(self, rois):
        """The plaintext template of one presentation, (1, G, d): its views fused as in
        :meth:`features` (the centred window) -- only ever handed to protection at
        enrolment."""
        return self.extractor.fuse(self.view_cells(rois))[self.extractor.zero_shift][None]

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
        """After a no_match: the palm of a disabled user denies with ``user_disabled``
        instead of ``no_match``."""
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
    def screen(self, burst, out: Decision | None = None) -> list:
        """An enrolment presentation through the gate's own checks -- quality (at least
        ``min_views`` usable views), palm regions, and liveness when ``[liveness] enabled``
        (a missing or failing liveness model refuses, as it denies at the gate). Returns the
        first-region ROIs of the usable views; raises :class:`Deny` with the reason. ``out``
        (a Decision) gets what the stages found (``palmgate evaluate-liveness`` reads it)."""
        out = Decision() if out is None else out
        ok = self._quality(burst, out)
        burst = self.calibrate(burst, ok)          # the unit's calibration, as at the gate
        rois = self._regions(burst, ok, out)
        if self.sensor is not None:
            self._sensor(burst, out)
            if self.binding is not None:     # the same hand in the sensor frame and the views
                out.sensor_probes = self.binding(burst, out).probes
                if self.identity is not None:        # what enrolment keeps of the frame
                    out.sensor_patch = self.identity.patch(burst.sensor, out.sensor_probes)
                    out.sensor_size = self.identity.size(out.sensor_probes)
        return rois

    # ------------------------------------------------------------------ the presentation
    def _sensor_chain(self, burst, clock: StageClock, job: "_SensorJob") -> None:
        """The sensor thread: sensor, then binding (unless the presentation is already
        denied), into the job's own Decision; a deny or an error ends the chain."""
        try:
            job.stage = "sensor"
            lim = self.cfg.timeouts["sensor"] / 1e3     # _wait_sensor's limit for the stage
            clock.run("sensor", self._sensor, burst, job.out, lambda: job.cancelled.is_set()
                      or time.perf_counter() > job.t0 + lim)
            if self.binding is not None and getattr(self.binding, "needs_regions", False):
                job.regions.wait(self.cfg.timeouts["regions"] / 1e3)   # the views' regions
                if not job.regions.is_set() and not job.cancelled.is_set():
                    # no regions yet and the presentation undecided: never skip the binding
                    raise Deny("timeout:regions", "please present your palm again",
                               "the views' regions were not ready for the binding")
            if self.binding is not None and not job.cancelled.is_set() \
                    and (job.regions.is_set() or
                         not getattr(self.binding, "needs_regions", False)):
                job.binding_t0 = time.perf_counter()
                job.stage = "binding"
                b = clock.run("binding", self.binding, burst, job.out)
                job.out.sensor_probes = getattr(b, "probes", None)
        except SizeTermDeny as d:
            if job.hold:        # the identity checks may release it (device.gate.binding_release)
                job.pending, job.out.sensor_probes = d, d.probes
            else:
                job.deny = d
        except Deny as d:
            job.deny = d
        except Exception as e:      # noqa: BLE001 - any failure of any stage is a deny
            job.deny = Deny(f"error:{job.stage}", "please present your palm again")
            log.exception("stage %s failed: %s", job.stage, e)

    def _wait_sensor(self, job: "_SensorJob") -> None:
        """Wait for the sensor chain -- its sensor stage at most ``[timeouts] sensor`` from the
        chain's submission, its binding at most ``binding`` from the binding's start: a hung
        stage is a ``timeout:<stage>`` -- and raise its deny."""
        job.reached = True
        lim = self.cfg.timeouts
        deadline = job.t0 + lim["sensor"] / 1e3
        while True:
            try:
                job.future.result(timeout=max(0.0, deadline - time.perf_counter()))
                break
            except FutureTimeout:
                b0 = job.binding_t0
                if b0 is not None and b0 + lim["binding"] / 1e3 > deadline:
                    deadline = b0 + lim["binding"] / 1e3      # the binding's own limit
                    continue
                job.cancelled.set()
                raise Deny(f"timeout:{job.stage}", "please present your palm again",
                           f"{job.stage} still running at its time limit") from None
        if job.deny is not None:
            raise job.deny

    def decide(self, burst, claimed: str | None = None) -> Decision:
        t_start, c_start = time.perf_counter(), time.process_time()
        out = Decision(burst=str(burst.meta.get("burst", "")))
        clock = StageClock(self.cfg.timeouts, t_start)
        stage = "quality"
        job, held = None, False

        def timed(name, fn, *a):
            nonlocal stage
            stage = name
            return clock.run(name, fn, *a)

        try:
            ok = timed("quality", self._quality, burst, out)
            if self.calibration.calibrated:
                burst = timed("calibration", self.calibrate, burst, ok)
            if self.sensor is not None:
                job = _SensorJob(Decision(), threading.Event(), time.perf_counter())
                job.hold = self.identity is not None and self.split is None
                if self.cfg.gate.overlap:
                    job.future = self.side.submit(self._sensor_chain, burst, clock, job)
            rois = timed("regions", self._regions, burst, ok, out)
            out.views_used = len(rois)
            if job is not None:                # what the views showed, for the binding
                for f in REGION_FIELDS:
                    setattr(job.out, f, getattr(out, f))
                job.regions.set()
            if job is not None and job.future is None:       # [gate] overlap off: in sequence
                job.t0 = time.perf_counter()
                job.future = _ran(self._sensor_chain, burst, clock, job)
            if job is not None and (self.split is not None or
                                    (job.future.done() and job.deny is not None)):
                stage = job.stage       # the nodes see nothing the sensor chain denies
                self._wait_sensor(job)
            mo = Decision()             # what feature + match find: kept if the sensor passes
            mo.rois = out.rois
            failed = None
            try:
                if self.split is not None:         # the nodes extract and match on shares
                    q = timed("feature", self.split.send, rois, claimed, mo)
                    timed("match", self.split.match, q, mo)
                else:
                    q = timed("feature", self.features, rois)
                    timed("match", self._match, q, claimed, mo)
            except Deny as d:
                failed = d
            except Exception as e:  # noqa: BLE001 - any failure of any stage is a deny
                failed = Deny(f"error:{stage}", "please present your palm again")
                log.exception("stage %s failed: %s", stage, e)
            if job is not None:
                stage = job.stage
                self._wait_sensor(job)           # a sensor-chain deny comes first
            for f in MATCH_FIELDS:
                setattr(out, f, getattr(mo, f))
            pending = None if job is None else job.pending
            if failed is not None:
                raise pending or failed        # a held-back binding deny comes first
            if self.identity is not None and job is not None:    # the person now known
                out.palm_lines = job.out.palm_lines       # the binding's lines, for the sum
                out.p_live = job.out.p_live               # how sure liveness was, for it too
                try:
                    timed("identity", self.identity, burst.sensor, job.out.sensor_probes, out)
                except Exception as e:     # noqa: BLE001 - a held-back binding deny first
                    if pending is None:
                        raise
                    if not isinstance(e, Deny):
                        log.exception("stage identity failed: %s", e)
                    raise pending from None
            if pending is not None:
                if not released(pending, out):
                    raise pending
                if isinstance(pending, IdentifiedDeny):
                    out.binding_identified = RELEASED
                else:
                    out.binding_size_term = RELEASED
            self._access(out)                  # validity, weekly zones, holidays: now
            out.decision, out.reason = "open", "match"
        except Deny as d:
            if job is not None and d is job.pending:     # as if the binding had denied first
                _dropped(out)
                held = True
            out.decision, out.reason, out.prompt = "deny", d.reason, d.prompt
            if d.detail:
                log.info("deny %s: %s", d.reason, d.detail)
        except Exception as e:      # noqa: BLE001 - any failure of any stage is a deny
            out.decision, out.reason = "deny", f"error:{stage}"
            out.prompt = "please present your palm again"
            log.exception("stage %s failed: %s", stage, e)
        names = [s for s in MAIN_CHAIN if s in clock.wall]
        if job is not None:
            job.cancelled.set()                # a binding not yet started is not needed
            job.regions.set()
            if job.reached and job.future.done():     # the sensor chain's verdict counted
                for f in SENSOR_FIELDS:
                    setattr(out, f, getattr(job.out, f))
                names += [s for s in SENSOR_CHAIN if s in clock.wall and s not in names]
                if job.deny is not None and out.reason == job.deny.reason:
                    # its deny decided: feature and match, run beside it, did not count (in
                    # sequence they would not have run)
                    names = [s for s in names if s not in ("feature", "match")]
            if held:        # nor the match and the identity behind a held-back binding deny
                names = [s for s in names if s not in ("feature", "match", "identity")]
        clock.into(out, sorted(names, key=STAGES.index))
        out.critical_path = critical_path(out.stages_at_ms, (MAIN_CHAIN, SENSOR_CHAIN))
        out.total_ms = (time.perf_counter() - t_start) * 1e3
        # the process's CPU time, every thread of it (the sensor chain runs beside the regions)
        out.total_cpu_ms = (time.process_time() - c_start) * 1e3
        return out


IDENTITY_FIELDS = ("sensor_identity", "sensor_identity_score", "sensor_identity_raw",
                   "sensor_identity_bucket", "sensor_identity_raw_bucket", "sensor_identity_by",
                   "hand_size", "hand_size_ratio", "lookalikes")
"""What the identity stage writes into the Decision."""

HELD_FIELDS = tuple(f for f in MATCH_FIELDS if f != "rois") + IDENTITY_FIELDS
"""What the match and the identity stage wrote, dropped when a held-back binding deny
(:mod:`device.gate.binding_release`) decides: the decision reads as the binding's deny did."""


def _dropped(out: Decision) -> None:
    blank, by = Decision(), out.sensor_identity_by
    for f in HELD_FIELDS:
        setattr(out, f, getattr(blank, f))
    out.identity_by_held = by


def _ran(fn, *a) -> Future:
    """``fn(*a)`` run here, as a finished Future."""
    f = Future()
    f.set_result(fn(*a))
    return f


@dataclass
class _SensorJob:
    """The sensor chain of one presentation: its own Decision (merged into the presentation's
    when the chain's verdict counts), its deny, the stage it is in."""

    out: Decision
    cancelled: threading.Event
    t0: float
    regions: threading.Event = field(default_factory=threading.Event)   # regions passed
    future: object = None
    stage: str = "sensor"
    deny: Deny | None = None
    reached: bool = False        # the decision got as far as the sensor chain
    binding_t0: float | None = None
    hold: bool = False           # a SizeTermDeny of the binding waits for the identity checks
    pending: Deny | None = None  # that deny, held back (device.gate.binding_release)
