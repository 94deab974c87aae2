"""Measure the palm-region step (device.vision.regions) on a folder of hand images.

    python -m tools.eval_regions DIR --kind synthetic|polyu|ntust [--split all|train|val]
                                 [--out OUT] [--sheet N] [--limit N]
                                 [--segmenter classical|net] [--landmarks full|lite|off]
                                 [--no-quality] [--precision int8|fp32]

By default it runs the gate's front end (device.vision.front_end: the raw-frame check, hand
landmarks -> regions, the quality checks, the segmentation path as fallback), so its FTA by
reason is the gate's; ``--landmarks off --no-quality`` is the classical region step alone.

Prints one JSON object: ``n``, ``fta`` (failure-to-acquire rate), ``failures`` by reason,
``quality`` (median, p05), ``ms_per_image`` and, where a ``.json`` with ground-truth keypoints
sits beside an image (synthetic hands from ``python -m tools.synth hands``), ``keypoint_error_px``
(median and p95 per keypoint and over the three finger valleys) and the same in units of the
valley span. With ``--out`` it also writes OUT/report.json, OUT/regions.json (per image) and
OUT/sheet.png: a contact sheet of N images with the hand outline, the detected valleys (red),
the ground truth (green crosses, when known), the first region (yellow) and the second region
(cyan); failures carry their reason. Do not commit sheets of real research images.
``--segmenter net`` puts the segmentation network (models/hand_seg[_int8].onnx) first on colour
views, with the classical hypotheses as fallback; ``by_segmentation`` counts which path acquired
(landmarks, net, classical).

``--split`` applies to PolyU NIR (250 palms): ``tools.train.realdata.split_subjects(250, 0.2, 0)``
on the sorted subject folders.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from device.sources.layout import IMAGE_EXTENSIONS
from device.vision.regions import VALLEY_NAMES, RegionError, extract_regions, read_hand_image

KP_NAMES = VALLEY_NAMES + ("palm_centre",)


def list_images(root: Path, kind: str, split: str = "all") -> list[Path]:
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                   and p.is_file())
    if kind == "polyu" and split != "all":
        from tools.train.realdata import split_subjects
        subjects = sorted({p.parent.name for p in paths})
        train, val = split_subjects(len(subjects), 0.2, 0)
        keep = {subjects[i] for i in (val if split == "val" else train)}
        paths = [p for p in paths if p.parent.name in keep]
    return paths


def ground_truth(path: Path) -> dict | None:
    j = path.with_suffix(".json")
    if not j.exists():
        return None
    d = json.loads(j.read_text())
    if "valleys" not in d:
        return None
    vis = d.get("visible", {})
    vv = vis.get("valleys", [True] * 4)
    gt = {n: (np.array(v, float) if ok else None)
          for n, v, ok in zip(VALLEY_NAMES, d["valleys"], vv)}
    gt["palm_centre"] = np.array(d["palm_centre"], float) if vis.get("palm_centre", True) \
        else None
    gt["roi_corners"] = np.array(d["roi_corners"], float)
    return gt


def _stats(x) -> dict | None:
    x = np.asarray([v for v in x if v is not None and np.isfinite(v)], float)
    if not len(x):
        return None
    return {"median": round(float(np.median(x)), 2), "p95": round(float(np.percentile(x, 95)), 2),
            "mean": round(float(x.mean()), 2), "n": int(len(x))}


def _draw(im: np.ndarray, reg, gt, err: str | None, thumb: int = 240) -> np.ndarray:
    vis = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR) if im.ndim == 2 else im.copy()
    s = thumb / max(vis.shape[:2])
    lw = max(1, int(round(1.5 / s)))
    if reg is not None:
        if reg.hand_mask is not None:
            cs, _ = cv2.findContours(reg.hand_mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(vis, cs, -1, (0, 160, 0), lw)
        cv2.polylines(vis, [np.int32(np.round(reg.second_corners))], True, (255, 255, 0), lw)
        cv2.polylines(vis, [np.int32(np.round(reg.roi_corners))], True, (0, 255, 255), lw)
        for p in reg.keypoints.valleys:
            if np.isfinite(p).all():
                cv2.circle(vis, tuple(int(round(v)) for v in p), 3 * lw, (0, 0, 255), -1)
        cv2.circle(vis, tuple(int(round(v)) for v in reg.keypoints.palm_centre), 3 * lw,
                   (0, 255, 255), -1)
        if reg.landmarks is not None:
            for p in reg.landmarks[:, :2]:
                cv2.circle(vis, tuple(int(round(v)) for v in p), 2 * lw, (255, 0, 255), -1)
    if gt is not None:
        for n in KP_NAMES:
            if gt.get(n) is not None:
                cv2.drawMarker(vis, tuple(int(round(v)) for v in gt[n]), (0, 255, 0),
                               cv2.MARKER_CROSS, 10 * lw, lw)
    out = cv2.resize(vis, (round(vis.shape[1] * s), round(vis.shape[0] * s)),
                     interpolation=cv2.INTER_AREA)
    if err:
        cv2.rectangle(out, (0, 0), (out.shape[1] - 1, out.shape[0] - 1), (0, 0, 255), 3)
        cv2.putText(out, err, (5, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1,
                    cv2.LINE_AA)
    return out


def contact_sheet(tiles: list[np.ndarray], cols: int = 6) -> np.ndarray:
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * h, cols * w, 3), 32, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * h:r * h + t.shape[0], c * w:c * w + t.shape[1]] = t
    return sheet


def evaluate_regions(root, kind: str, split: str = "all", out=None, sheet: int = 36,
                     limit: int | None = None, modality: str = "auto",
                     segmenter=None, front_end=None, settings=None) -> dict:
    """``front_end``: the gate's front end (device.vision.front_end.FrontEnd; ``settings``:
    the [quality] settings for the raw-frame check first); without it the classical region
    step alone (``extract_regions`` with ``modality`` and ``segmenter``)."""
    from device.vision.quality import CorruptFrame, QualityIssue, frame_check
    root = Path(root)
    paths = list_images(root, kind, split)
    if limit:
        paths = paths[:limit]
    if not paths:
        raise SystemExit(f"no images under {root}")
    pick = set(np.linspace(0, len(paths) - 1, min(sheet, len(paths))).round().astype(int)) \
        if sheet else set()
    failures: dict[str, int] = {}
    errs = {n: [] for n in KP_NAMES}
    rel = {n: [] for n in KP_NAMES}
    quality, per_image, tiles, times = [], [], [], []
    by_seg: dict[str, int] = {}
    for k, p in enumerate(paths):
        im = read_hand_image(p)
        gt = ground_truth(p)
        reg, err = None, None
        t0 = time.perf_counter()
        try:
            if im is None:
                raise RegionError("bad_input", "cannot decode")
            if front_end is not None:
                if settings is not None:
                    frame_check(im, settings)
                reg = front_end(im)
            else:
                reg = extract_regions(im, modality=modality, segmenter=segmenter)
            by_seg[reg.segmentation] = by_seg.get(reg.segmentation, 0) + 1
        except (RegionError, QualityIssue, CorruptFrame) as e:
            err = getattr(e, "reason", "corrupt_frame")
            failures[err] = failures.get(err, 0) + 1
        times.append(time.perf_counter() - t0)
        rec = {"path": str(p.relative_to(root)), "error": err}
        if reg is not None:
            quality.append(reg.quality)
            rec.update(reg.keypoints.as_dict(), quality=round(reg.quality, 3),
                       segmentation=reg.segmentation,
                       ms={k: round(v, 1) for k, v in reg.timings_ms.items()})
            if reg.landmarks is not None:
                rec["landmarks"] = np.round(reg.landmarks[:, :2], 1).tolist()
            if gt is not None:
                span = np.hypot(*(gt["index_middle"] - gt["ring_little"])) \
                    if gt["index_middle"] is not None and gt["ring_little"] is not None else None
                det = dict(zip(VALLEY_NAMES, reg.keypoints.valleys))
                det["palm_centre"] = reg.keypoints.palm_centre
                rec["error_px"] = {}
                for n in KP_NAMES:
                    if gt.get(n) is None or not np.isfinite(det[n]).all():
                        continue
                    e = float(np.hypot(*(det[n] - gt[n])))
                    errs[n].append(e)
                    rec["error_px"][n] = round(e, 2)
                    if span:
                        rel[n].append(e / span)
        per_image.append(rec)
        if k in pick:
            tiles.append(_draw(im if im is not None else np.zeros((64, 64), np.uint8),
                               reg, gt, err))
    n = len(paths)
    report = {"dir": str(root), "kind": kind, "split": split, "n": n,
              "fta": round(sum(failures.values()) / n, 4), "failures": failures,
              "quality": {"median": round(float(np.median(quality)), 3),
                          "p05": round(float(np.percentile(quality, 5)), 3)} if quality else None,
              "ms_per_image": round(1000 * float(np.mean(times)), 1),
              "ms_per_image_median": round(1000 * float(np.median(times)), 1),
              "by_segmentation": by_seg}
    if any(errs.values()):
        fingers = errs["index_middle"] + errs["middle_ring"] + errs["ring_little"]
        report["keypoint_error_px"] = {"finger_valleys": _stats(fingers),
                                       **{m: _stats(errs[m]) for m in KP_NAMES}}
        report["keypoint_error_span"] = {
            "finger_valleys": _stats(rel["index_middle"] + rel["middle_ring"]
                                     + rel["ring_little"]),
            "palm_centre": _stats(rel["palm_centre"])}
        # wrong-finger rate: a finger valley more than half a finger gap off
        big = [e > 0.25 for e in rel["index_middle"] + rel["middle_ring"] + rel["ring_little"]]
        report["valleys_off_by_over_quarter_span"] = round(float(np.mean(big)), 4) \
            if big else None
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(report, indent=2))
        (out / "regions.json").write_text(json.dumps(per_image, indent=1))
        if tiles:
            cv2.imwrite(str(out / "sheet.png"), contact_sheet(tiles))
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.eval_regions", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--kind", choices=["synthetic", "polyu", "ntust"], required=True)
    ap.add_argument("--split", choices=["all", "train", "val"], default="all")
    ap.add_argument("--modality", choices=["auto", "nir", "visible"], default="auto")
    ap.add_argument("--out")
    ap.add_argument("--sheet", type=int, default=36, help="images on the contact sheet")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--segmenter", choices=["classical", "net"], default="net")
    ap.add_argument("--landmarks", choices=["full", "lite", "off"], default="full",
                    help="the front end's hand-landmark network (off, with --no-quality: the "
                         "classical region step alone, as before the landmarks)")
    ap.add_argument("--no-quality", action="store_true",
                    help="leave out the gate's quality checks")
    ap.add_argument("--precision", choices=["int8", "fp32"], default="int8")
    ap.add_argument("--models", default=None, help="models folder (default: models/)")
    ap.add_argument("--config", default=None, help="gate configuration whose [quality] "
                                                    "settings to use (default: the defaults)")
    a = ap.parse_args(argv)
    fe = q = seg = None
    if a.landmarks == "off" and a.no_quality:
        if a.segmenter == "net":
            from device.vision.segmentation import NetSegmenter
            seg = NetSegmenter(a.precision, a.models)
    else:
        from device.config import load_config
        from device.gate.front_end_stage import front_end_from_config
        cfg = load_config(a.config, gate={"segmenter": a.segmenter, "landmarks": a.landmarks,
                                      "precision": a.precision},
                          paths={"models": a.models or ""})
        fe = front_end_from_config(cfg, check_quality=not a.no_quality)[0]
        q = None if a.no_quality else cfg.quality
    rep = evaluate_regions(a.dir, a.kind, a.split, a.out, a.sheet, a.limit, a.modality, seg,
                           fe, q)
    json.dump(rep, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
