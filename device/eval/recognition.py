"""``palmgate evaluate``: an ISO/IEC 19795-style verification test on any data set in the
standard layout. A capture is N consecutive samples of one session of one subject, its views.
A capture is scored against another either as one fused feature (the seed-000 attention
fusion, or the mean of the views' unit cells) or from its N x N image scores (the best or the
mean of them). cross-session compares every session-1 capture with every session-2 capture;
all-pairs compares all captures."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from device.eval.det_plot import draw_det
from device.sources.layout import SampleRef, scan
from device.eval.capture_scores import (combine_view_pairs, fuse_captures,
                                        protected_scores)
from device.eval.metrics import verification_summary
from device.recognition.matchers import (DEFAULT_MATCHER, LEARNED, PROTECTED, get_matcher,
                                         subset)

FARS = ("1e-3", "1e-4", "1e-5")
# images whose per-view cells are held at once while captures are fused (bounds the memory)
FEATURE_CHUNK = 512
# the score of a comparison with a capture the gate denies (fewer usable views than
# [gate] min_views): below every threshold of a cosine score
DENIED_SCORE = -2.0


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


def scoring_rule(m, views: int, fusion: str | None = None, pair_rule: str | None = None):
    """("fusion", "attention" | "mean") or ("pairs", "best" | "mean"): how captures of
    ``views`` views are compared with matcher ``m``. Default: the feature's learned
    attention fusion where it has one, else the mean of the N x N view-pair scores."""
    ext = getattr(m, "extractor", None)
    learned = _learned_fusion(ext) if getattr(m, "fuse_views", False) else None
    if fusion is not None and pair_rule is not None:
        raise ValueError("--fusion and --pair-rule are two ways to score a capture; give one")
    if fusion is not None:
        if ext is None or not hasattr(ext, "zero_shift"):
            raise ValueError(f"--fusion needs a cell feature; matcher {m.name!r} has none "
                             f"(use --pair-rule best|mean)")
        if fusion == "attention" and learned is None:
            raise ValueError(f"matcher {m.name!r} has no learned fusion; use --fusion mean")
        return "fusion", fusion
    if pair_rule is not None:
        return "pairs", pair_rule
    return ("fusion", "attention") if learned is not None else ("pairs", "mean")


def _learned_fusion(ext):
    """The feature's views -> one feature function if it has a learned fusion, else None."""
    if ext is None or not hasattr(ext, "fuse"):
        return None
    inner = getattr(ext, "learned", ext)
    return ext.fuse if getattr(inner, "fusion_model", None) is not None else None


def _view_cells(ext, images) -> np.ndarray:
    """(N, S, G, D) cells of every image at every window shift, no view fusion."""
    return ext.cells(images) if hasattr(ext, "cells") else ext.queries(images)


def degrade_captures(images: np.ndarray, members: np.ndarray, k: int, seed: int = 0):
    """Degrade ``k`` of the views of every capture (``members`` (C, V) image indices) in place,
    each with a kind drawn at random from ``device.eval.degrade.KINDS``. Returns
    {kind: count}."""
    from device.eval.degrade import KINDS, degrade
    if not 0 <= k <= members.shape[1]:
        raise ValueError(f"--degrade {k}: a capture has {members.shape[1]} views")
    rng = np.random.default_rng(seed)
    counts: dict = {}
    for row in members:
        for v in rng.choice(len(row), k, replace=False):
            kind = KINDS[int(rng.integers(len(KINDS)))]
            images[row[v]] = degrade(images[row[v]], kind, rng)
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def evaluate(root, level: str = "roi", views: int = 1, protocol: str = "cross-session",
             matcher: str | None = None, out=None, progress=None,
             protected: bool = False, precision: str = "fp32",
             segmenter: str | None = None, landmarks: str | None = None,
             config=None, quality: bool = True, fusion: str | None = None,
             pair_rule: str | None = None, degrade: int = 0, seed: int = 0,
             threads: int = 1, key_seed: int | None = None, view_check: bool = True) -> dict:
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
    leaves out the quality checks (the region steps' own failures still count).
    ``fusion`` / ``pair_rule``: how a capture's views are scored (:func:`scoring_rule`).
    ``degrade``: that many views of every capture degraded (``device.eval.degrade``, drawn
    with ``seed``). ``threads``: protected matching threads. ``key_seed``: protected keys
    from a seeded generator (reproducible runs; default the gate's os.urandom).
    ``view_check``: as the gate, drop every view whose palm region is unusable
    (device.vision.view_usability, the ``[quality]`` settings of ``config``) before its
    capture is fused or its view pairs are scored; a capture with fewer than ``[gate]
    min_views`` usable views (at most ``views``) is denied, as at the gate: its comparisons
    score below every threshold (they count as false rejects; ``acquired`` gives the rates
    without them)."""
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
    how, rule = scoring_rule(m, views, fusion, pair_rule)
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
    members = np.array([[index[r.path] for r in c.refs] for c in caps]).reshape(-1, views)
    degraded = degrade_captures(images, members, degrade, seed) if degrade else None
    usable, checked = (check_views(images, members, config, views) if view_check
                       else (None, None))
    t0, c0 = time.perf_counter(), time.process_time()
    if how == "fusion":
        pair, (t_feat, c_feat) = _fused_pairs(m, images, members, rule, i, j, protected,
                                              threads, key_seed, progress, (t0, c0), usable)
    else:
        pair, (t_feat, c_feat) = _view_pair_scores(m, images, members, rule, i, j, protected,
                                                   threads, key_seed, progress, (t0, c0),
                                                   usable)
    acquired = None
    if checked is not None:
        denied = checked.pop("denied_mask")
        out_pair = denied[i] | denied[j]
        if out_pair.any():
            keep = ~out_pair
            if (genuine & keep).any() and (~genuine & keep).any():
                a = verification_summary(pair[keep & genuine], pair[keep & ~genuine])
                acquired = {k: a[k] for k in ("eer", "frr", "n_genuine", "n_impostor")}
            pair = np.where(out_pair, DENIED_SCORE, pair)
        checked["genuine_pairs_denied"] = int((out_pair & genuine).sum())
    t_match = time.perf_counter() - t0 - t_feat
    cpu_all = time.process_time() - c0
    g, imp = pair[genuine], pair[~genuine]
    if len(g) == 0 or len(imp) == 0:
        raise ValueError("the data set gives no genuine or no impostor comparisons")
    summary = verification_summary(g, imp)
    report = {"matcher": m.name, "protected": bool(protected), "level": level, "views": views,
              "precision": precision,
              "protocol": protocol,
              **({"fusion": rule} if how == "fusion" else {"pair_rule": rule}),
              "degraded_views": degrade, **({"degradations": degraded} if degrade else {}),
              **({"view_check": checked} if checked is not None else {}),
              **({"acquired": acquired} if acquired is not None else {}),
              **({"segmenter": cfg.gate.segmenter, "landmarks": cfg.gate.landmarks,
                  "quality_checks": bool(quality), "views_by_path": paths}
                 if level == "hand" else {}),
              "eer": summary["eer"], "tar": summary["tar"], "frr": summary["frr"],
              "fta": len(failed) / len(refs), "n_genuine": summary["n_genuine"],
              "n_impostor": summary["n_impostor"], "far_floor": summary["far_floor"],
              "n_images": len(refs), "n_captures": len(caps),
              "seconds": {"features": round(t_feat, 2), "matching": round(t_match, 2)},
              "cpu_seconds": {"features": round(c_feat, 2),
                              "matching": round(cpu_all - c_feat, 2)},
              "pairs_per_second_matching": round(len(pair) / max(t_match, 1e-9)),
              "threads": threads, "load_average_1min": round(os.getloadavg()[0], 2)}
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
        label = f"{m.name}, {views} view(s), {rule} {'fusion' if how == 'fusion' else 'pairs'}"
        draw_det({label: (g, imp)}, out / "det.png", title=f"{Path(root).name}: {protocol}")
    return report


def check_views(images, members: np.ndarray, config=None, views: int = 1):
    """The gate's view check (device.vision.view_usability) on every view of every capture:
    (usable (C, V) bool, a summary with the dropped views by reason, the denied captures and
    ``denied_mask`` (C,): fewer usable views than ``[gate] min_views`` (at most ``views``))."""
    from device.config import load_config
    from device.vision.quality import QualityIssue
    from device.vision.view_usability import view_check
    cfg = load_config(config)
    need = min(cfg.gate.min_views, views)
    usable = np.ones(members.shape, bool)
    reasons: dict = {}
    for c, row in enumerate(members):
        for v, k in enumerate(row):
            try:
                view_check(images[k], cfg.quality)
            except QualityIssue as e:
                usable[c, v] = False
                reasons[e.reason] = reasons.get(e.reason, 0) + 1
    denied = usable.sum(1) < need
    return usable, {"min_texture": cfg.quality.min_texture,
                    "max_clipped": cfg.quality.max_clipped, "min_views": need,
                    "views_dropped": reasons, "captures_denied": int(denied.sum()),
                    "denied_mask": denied}


def _sides(i, j):
    """Enrolled captures (the first of each pair), probe captures, and each pair's rows."""
    a, ia = np.unique(i, return_inverse=True)
    b, jb = np.unique(j, return_inverse=True)
    return a, b, ia, jb


def _fused_pairs(m, images, members, fusion, i, j, protected, threads, key_seed, progress,
                 t0, usable=None):
    """Pair scores of captures fused into one feature each; and the feature seconds."""
    ext = m.extractor
    fuse = _learned_fusion(ext)
    fused = None
    step = max(1, FEATURE_CHUNK // members.shape[1])     # captures whose cells are held at once
    for lo in range(0, len(members), step):
        mem = members[lo:lo + step]
        vc = _view_cells(ext, images[mem.ravel()])
        part = fuse_captures(vc, np.arange(vc.shape[0]).reshape(mem.shape), fusion, fuse,
                             None if usable is None else usable[lo:lo + step])
        if fused is None:
            fused = np.empty((len(members),) + part.shape[1:], np.float32)
        fused[lo:lo + step] = part
    if progress:
        progress("encoded", members.size)
    t_feat = _since(t0)
    w, z = ext.importance, ext.zero_shift
    if protected:
        a, b, ia, jb = _sides(i, j)
        enrolled, probes = fused[a, z], fused[b]
        del fused                # only the enrolled side's centred windows are kept
        s = protected_scores(enrolled, probes, w, m.config, _key_rng(key_seed), threads,
                             progress=progress)
        return s[ia, jb].astype(np.float64), t_feat
    from device.recognition.cells import shift_max_scores
    s = shift_max_scores(fused, fused[:, z], w).T
    s = (s + s.T) / 2            # a comparison does not depend on which side is enrolled
    return s[i, j].astype(np.float64), t_feat


def _view_pair_scores(m, images, members, rule, i, j, protected, threads, key_seed, progress,
                      t0, usable=None):
    """Pair scores from the N x N image scores of each capture pair; and the feature
    seconds."""
    used = np.unique(members)
    pos = np.zeros(len(images), np.int64)
    pos[used] = np.arange(len(used))
    codes = m.encode(images[used])
    if progress:
        progress("encoded", len(used))
    t_feat = _since(t0)
    mem = pos[members]
    if protected:
        a, b, ia, jb = _sides(i, j)
        ea, pb = mem[a], mem[b]                      # image rows of each side's captures
        ra, rb = np.unique(ea), np.unique(pb)
        pa = np.searchsorted(ra, ea)
        pp = np.searchsorted(rb, pb)
        s = protected_scores(codes.templates[ra], codes.queries[rb], m.extractor.importance,
                             m.config, _key_rng(key_seed), threads, progress=progress)
        ua, ub = (None, None) if usable is None else (usable[a], usable[b])
        return combine_view_pairs(s, ia, jb, pa, pp, rule, ua, ub), t_feat
    s = m.scores(codes, codes)
    if getattr(m, "symmetric", True):
        s = (s + s.T) / 2        # a comparison does not depend on which side is enrolled
    return combine_view_pairs(s, i, j, mem, mem, rule, usable, usable), t_feat


def _since(t0) -> tuple[float, float]:
    """(wall, process CPU) seconds since ``t0`` = (perf_counter, process_time)."""
    return time.perf_counter() - t0[0], time.process_time() - t0[1]


def _key_rng(seed):
    return None if seed is None else np.random.default_rng(seed)
