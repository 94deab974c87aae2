"""``palmgate evaluate``: an ISO/IEC 19795-style verification test on any data set in the
standard layout. A capture is N consecutive samples of one session of one subject; its score
against another capture is the mean of the N x N image scores. cross-session compares every
session-1 capture with every session-2 capture; all-pairs compares all captures."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.eval.det_plot import draw_det
from device.sources.layout import SampleRef, scan
from device.eval.metrics import eer, tar_at_far
from device.recognition.matchers import (DEFAULT_MATCHER, LEARNED, PROTECTED, get_matcher,
                                         subset)

FARS = ("1e-3", "1e-4", "1e-5")


@dataclass(frozen=True)
class Capture:
    subject: str
    session: int
    refs: tuple[SampleRef, ...]

    @property
    def id(self) -> str:
        return f"{self.subject}/{self.session}_{self.refs[0].sample:02d}"


def make_captures(refs: list[SampleRef], views: int) -> list[Capture]:
    """Consecutive runs of ``views`` samples within each (subject, session); a remainder is
    dropped."""
    if views < 1:
        raise ValueError("--views must be at least 1")
    groups: dict[tuple[str, int], list[SampleRef]] = {}
    for r in sorted(refs):
        groups.setdefault((r.subject, r.session), []).append(r)
    caps = []
    for (subj, sess), rs in groups.items():
        for k in range(len(rs) // views):
            caps.append(Capture(subj, sess, tuple(rs[k * views:(k + 1) * views])))
    return caps


def capture_pairs(caps: list[Capture], protocol: str):
    """(i, j) index pairs of captures to compare, and whether each pair is genuine."""
    n = len(caps)
    if protocol == "cross-session":
        a = [k for k, c in enumerate(caps) if c.session == 1]
        b = [k for k, c in enumerate(caps) if c.session == 2]
        if not a or not b:
            raise ValueError("cross-session needs captures of sessions 1 and 2")
        i, j = np.meshgrid(a, b, indexing="ij")
    elif protocol == "all-pairs":
        i, j = np.triu_indices(n, k=1)
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    i, j = i.ravel(), j.ravel()
    subj = np.array([c.subject for c in caps])
    return i, j, subj[i] == subj[j]


def load_rois(refs: list[SampleRef], size: int = 128):
    """Grey ROIs resized to ``size``; indices of the images that failed to decode."""
    imgs, failed = [], []
    for k, r in enumerate(refs):
        im = cv2.imread(str(r.path), cv2.IMREAD_GRAYSCALE)
        if im is None:
            failed.append(k)
            im = np.zeros((size, size), np.uint8)
        elif im.shape != (size, size):
            im = cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA)
        imgs.append(im)
    return np.stack(imgs), failed


def load_hand_rois(refs: list[SampleRef], progress=None, front_end=None, quality=None):
    """First regions (128x128 palm-centre ROIs) of whole-hand images through the gate's front
    end (``front_end``: a :class:`device.vision.front_end.FrontEnd`; default: the gate's, from
    the default configuration), after the gate's raw-frame check (``quality``: the
    ``[quality]`` settings; None skips it); indices of the images where no ROI could be
    acquired, and how many failed for which reason (the gate's deny reasons without
    ``quality:``), and how many were acquired by which path."""
    from device.vision.quality import CorruptFrame, QualityIssue, frame_check
    from device.vision.region_types import FIRST_SIZE
    from device.vision.regions import read_hand_image
    if front_end is None:
        from device.config import load_config
        from device.gate.front_end_stage import front_end_from_config
        cfg = load_config(None)
        front_end, quality = front_end_from_config(cfg)[0], cfg.quality
    imgs, failed, reasons, paths = [], [], {}, {}
    for k, r in enumerate(refs):
        try:
            im = read_hand_image(r.path)
            if im is None:
                raise QualityIssue("bad_input", f"cannot decode {r.path}")
            if quality is not None:
                frame_check(im, quality)
            reg = front_end(im)
            roi = reg.roi
            paths[reg.segmentation] = paths.get(reg.segmentation, 0) + 1
        except (QualityIssue, CorruptFrame) as e:
            reason = getattr(e, "reason", "corrupt_frame")
            failed.append(k)
            reasons[reason] = reasons.get(reason, 0) + 1
            roi = np.zeros((FIRST_SIZE, FIRST_SIZE), np.uint8)
        imgs.append(roi)
        if progress and (k + 1) % 500 == 0:
            progress("regions", k + 1)
    return np.stack(imgs), failed, reasons, paths


def hand_front_end(segmenter: str | None = None, landmarks: str | None = None,
                   precision: str = "fp32", config=None, quality: bool = True):
    """(front end, [quality] settings) of the gate's configuration (``config``: a TOML path or
    None for the defaults) with ``[gate] segmenter`` / ``landmarks`` / ``precision``
    overridden where given; ``quality=False``: the region steps alone, no quality checks."""
    from device.config import load_config
    from device.gate.front_end_stage import front_end_from_config
    gate = {"precision": precision}
    if segmenter is not None:
        gate["segmenter"] = segmenter
    if landmarks is not None:
        gate["landmarks"] = landmarks
    cfg = load_config(config, gate=gate)
    fe = front_end_from_config(cfg, check_quality=quality)[0]
    return fe, (cfg.quality if quality else None), cfg


def evaluate(root, level: str = "roi", views: int = 1, protocol: str = "cross-session",
             matcher: str | None = None, out=None, progress=None,
             protected: bool = False, precision: str = "fp32",
             segmenter: str | None = None, landmarks: str | None = None,
             config=None, quality: bool = True) -> dict:
    """``level`` "roi": the images are palm ROIs; "hand": whole hands (grey NIR frames or
    colour photos), cut to their first region by device.vision.regions first -- an image without
    one counts toward ``fta`` and leaves the comparisons, as an undecodable file does.
    ``protected``: the gate's protected templates (matcher ``cells-protected``): the first
    capture of each compared pair (session 1 in cross-session) is enrolled, the other probes.
    Hand level runs the gate's front end (:func:`hand_front_end`: the raw-frame check, the
    landmark path, the segmentation path as fallback, the quality checks) from the gate's
    configuration (``config``, default: the defaults) with these overrides where given:
    ``segmenter`` "classical" or "net" (the segmentation network first on colour images);
    ``landmarks`` "full", "lite" or "off"; ``precision`` of their models; ``quality=False``
    leaves out the quality checks (the region steps' own failures still count)."""
    if level not in ("roi", "hand"):
        raise ValueError(f"unknown level {level!r}; use roi or hand")
    matcher = matcher or DEFAULT_MATCHER
    if protected and matcher not in PROTECTED:
        raise ValueError(f"--protected protects the gate's cell features; matcher {matcher!r} "
                         f"has no protected form")
    if protected:
        matcher = PROTECTED[matcher]
    # at hand level --precision picks the front end's model files; a classical matcher stays fp32
    m = get_matcher(matcher, precision=precision if matcher in LEARNED or level != "hand"
                    else "fp32")
    refs = scan(root)
    if not refs:
        raise ValueError(f"no images in the standard layout under {root}")
    reasons = None
    if segmenter not in (None, "classical", "net"):
        raise ValueError(f"unknown segmenter {segmenter!r}; use classical or net")
    if level == "hand":
        fe, q, cfg = hand_front_end(segmenter, landmarks, precision, config, quality)
        images, failed, reasons, paths = load_hand_rois(refs, progress, fe, q)
    else:
        images, failed = load_rois(refs)
    caps = make_captures([r for k, r in enumerate(refs) if k not in set(failed)], views)
    index = {r.path: k for k, r in enumerate(refs)}
    i, j, genuine = capture_pairs(caps, protocol)
    if views > 1 and getattr(m, "fuse_views", False):
        # multi-view attention fusion (seed 000): the views of a capture are fused into one
        # feature, captures compared
        codes = m.encode_sets(images, [[index[r.path] for r in c.refs] for c in caps])
        if progress:
            progress("encoded", len(images))
        s = m.scores(codes, codes)
        if getattr(m, "symmetric", True):
            s = (s + s.T) / 2
        pair = s[i, j].astype(np.float64)
    else:
        codes = m.encode(images)
        if progress:
            progress("encoded", len(images))
        # image-level scores between every image that appears in some capture
        used = sorted({index[r.path] for c in caps for r in c.refs})
        pos = {k: n for n, k in enumerate(used)}
        sub = subset(codes, np.asarray(used))
        s = m.scores(sub, sub)
        if getattr(m, "symmetric", True):
            s = (s + s.T) / 2  # a comparison does not depend on which side is enrolled
        members = np.array([[pos[index[r.path]] for r in c.refs] for c in caps])
        # capture score = mean over the views x views image pairs
        pair = np.zeros(len(i), np.float64)
        for a in range(views):
            for b in range(views):
                pair += s[members[i, a], members[j, b]]
        pair /= views * views
    g, imp = pair[genuine], pair[~genuine]
    if len(g) == 0 or len(imp) == 0:
        raise ValueError("the data set gives no genuine or no impostor comparisons")
    report = {"matcher": m.name, "protected": bool(protected), "level": level, "views": views,
              "precision": precision,
              "protocol": protocol,
              **({"segmenter": cfg.gate.segmenter, "landmarks": cfg.gate.landmarks,
                  "quality_checks": bool(quality), "views_by_path": paths}
                 if level == "hand" else {}),
              "eer": eer(g, imp), "tar": {f: tar_at_far(g, imp, float(f)) for f in FARS},
              "fta": len(failed) / len(refs), "n_genuine": int(len(g)),
              "n_impostor": int(len(imp)), "n_images": len(refs), "n_captures": len(caps)}
    if reasons is not None:
        report["fta_reasons"] = reasons
    if protected:
        from device.protect.defaults import DEFAULT_THRESHOLDS
        from dataclasses import asdict
        report["protection"] = asdict(m.config)
        report["shipped_thresholds"] = DEFAULT_THRESHOLDS
        report["accept_rates_at_shipped_thresholds"] = {
            f: {"genuine": float(np.mean(g >= t)), "impostor": float(np.mean(imp >= t))}
            for f, t in DEFAULT_THRESHOLDS.items()}
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        ids = np.array([c.id for c in caps])
        np.savez_compressed(out / "scores.npz", genuine=g, impostor=imp,
                            genuine_pairs=np.stack([ids[i[genuine]], ids[j[genuine]]], 1),
                            impostor_pairs=np.stack([ids[i[~genuine]], ids[j[~genuine]]], 1))
        (out / "report.json").write_text(json.dumps(report, indent=2))
        draw_det({f"{m.name}, {views} view(s)": (g, imp)}, out / "det.png",
                 title=f"{Path(root).name}: {protocol}")
    return report
