"""Scoring with the exported models (onnxruntime, the same graphs the gate runs): SR outputs,
p(live) through SR -> liveness, attack and bona fide error rates per species, the threshold
chosen on validation, fp32 and int8 rates, SR quality, and occlusion maps of the decisions."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from device.eval.liveness import choose_threshold, pad_rates, sr_quality, summarise_sr
from device.models.sensor_branch import is_live
from tools.train.sensor_config import SPECIES


def run_sr(sess, caps_u8: np.ndarray, as_u8: bool = True, batch: int = 16,
           dtype=np.float32) -> np.ndarray:
    """SR outputs of captures: uint8 (rounded) with ``as_u8``, else floats in [0, 1] of
    ``dtype``, written into one preallocated array (a float16 pool of 30,000 X-ray frames is
    3.8 GB; collecting float32 batches and converting afterwards needed three times that)."""
    out = None
    for i in range(0, len(caps_u8), batch):
        x = caps_u8[i:i + batch, None].astype(np.float32) / 255.0
        y = sess.run(None, {"capture": x})[0][:, 0]
        y = np.round(y * 255).astype(np.uint8) if as_u8 else y
        if out is None:
            out = np.empty((len(caps_u8),) + y.shape[1:], np.uint8 if as_u8 else dtype)
        out[i:i + len(y)] = y
    if out is None:
        raise ValueError("run_sr: no captures")
    return out


def run_liveness(sess, images: np.ndarray, batch: int = 32) -> np.ndarray:
    out = []
    for i in range(0, len(images), batch):
        x = images[i:i + batch, None]
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        out.append(sess.run(None, {"image": x})[0][:, 1])
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def branch_scores(sr_sess, lv_sess, caps_u8: np.ndarray, batch: int = 16) -> np.ndarray:
    """p(live) of captures through SR -> liveness in float, exactly as the runtime does."""
    out = []
    for i in range(0, len(caps_u8), batch):
        sr = run_sr(sr_sess, caps_u8[i:i + batch], as_u8=False, batch=batch)
        out.append(run_liveness(lv_sess, sr, batch))
    return np.concatenate(out) if out else np.zeros(0)


def by_species(p: np.ndarray, cls: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    bona = p[cls == "bona_fide"]
    return bona, {sp: p[cls == sp] for sp in dict.fromkeys(cls) if sp != "bona_fide"}


def _logit(p, eps: float = 1e-7):
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def species_margins(attacks: dict[str, np.ndarray], thr: float) -> dict:
    """How close each species comes to being accepted: logit(p) - logit(threshold) of its
    median and highest-scoring presentations (larger = harder)."""
    t = float(_logit(thr))
    return {sp: {"median": round(float(np.median(_logit(s)) - t), 2),
                 "p99": round(float(np.percentile(_logit(s), 99) - t), 2),
                 "max": round(float(np.max(_logit(s)) - t), 2)} for sp, s in attacks.items()
            if len(s)}


def rates(p, cls, thr, real_p=None) -> dict:
    bona, att = by_species(p, cls)
    r = pad_rates(bona, att, thr)
    r["n_bona_fide"], r["n_attack"] = int(bona.size), {k: int(v.size) for k, v in att.items()}
    if real_p is not None and len(real_p):
        r["real_nir_bpcer"] = float(np.mean(~is_live(real_p, thr)))
        r["real_nir_n"] = int(len(real_p))
    return r


def threshold_at_bpcer(groups: list[np.ndarray], max_bpcer: float) -> float:
    """The highest threshold at which every group of bona fide scores keeps its BPCER at or
    below ``max_bpcer`` (live iff p > threshold): per group the ``floor(max_bpcer x n)``
    lowest scores may be refused, the threshold sits half-way (in logit space) between the
    last refused and the first accepted score; the lowest over the groups.  Attacks do not
    take part: their rates come as they come."""
    ts = []
    for g in groups:
        g = np.sort(_logit(np.asarray(g, np.float64)))
        if not g.size:
            continue
        k = int(np.floor(max_bpcer * g.size + 1e-9))
        lower = g[k - 1] if k > 0 else g[0] - 1.0
        upper = g[k] if k < g.size else g[-1] + 1.0
        ts.append((lower + upper) / 2)
    if not ts:
        raise ValueError("threshold_at_bpcer: no bona fide scores")
    return float(1 / (1 + np.exp(-min(ts))))


def choose(p_val, cls_val, real_val=None, max_bpcer: float | None = None) -> float:
    """The validation threshold: with ``max_bpcer``, the highest one that keeps the synthetic
    and the real validation BPCER each at or below it (:func:`threshold_at_bpcer`); else the
    one minimising max(APCER_max, BPCER) over synthetic and real bona fide together."""
    bona, att = by_species(p_val, cls_val)
    has_real = real_val is not None and len(real_val)
    if max_bpcer is not None:
        return threshold_at_bpcer([bona] + ([np.asarray(real_val)] if has_real else []),
                                  max_bpcer)
    if has_real:
        bona = np.concatenate([bona, real_val])
    return choose_threshold(bona, att)


def split_scores(sr_sess, lv_sess, caps: dict, real_caps: dict,
                 cache=None) -> tuple[dict, dict]:
    """p(live) of the validation and held-out captures, synthetic and real, through SR ->
    liveness (with ``cache``, a :class:`tools.train.sensor_cache.SRCache` of the same SR
    file, the SR outputs come from it)."""
    def score(c):
        return cache.scores(lv_sess, c) if cache is not None else \
            branch_scores(sr_sess, lv_sess, c)
    return ({s: score(caps[s]) for s in ("val", "test")},
            {s: score(real_caps[s]) for s in ("val", "test")})


def fp32_rates(scores, cls: dict, max_bpcer: float | None = None) -> dict:
    """Validation threshold (:func:`choose`), validation and held-out rates, and the held-out
    species margins of an fp32 pipeline."""
    p_syn, p_real = scores
    thr = choose(p_syn["val"], cls["val"], p_real["val"], max_bpcer)
    fp32 = {"threshold": thr,
            "validation": rates(p_syn["val"], cls["val"], thr, p_real["val"]),
            "heldout": rates(p_syn["test"], cls["test"], thr, p_real["test"])}
    fp32["heldout"]["species_margin_logit"] = species_margins(
        by_species(p_syn["test"], cls["test"])[1], thr)
    return fp32


def int8_rates(scores, cls: dict, fp32: dict, max_bpcer: float | None = None) -> dict:
    """int8 threshold (validation, :func:`choose`), rates, and the largest held-out change
    against fp32."""
    p8_syn, p8_real = scores
    thr8 = choose(p8_syn["val"], cls["val"], p8_real["val"], max_bpcer)
    int8 = {"threshold": thr8,
            "validation": rates(p8_syn["val"], cls["val"], thr8, p8_real["val"]),
            "heldout": rates(p8_syn["test"], cls["test"], thr8, p8_real["test"]),
            "heldout_at_fp32_threshold": rates(p8_syn["test"], cls["test"],
                                               fp32["threshold"], p8_real["test"])}
    int8["max_rate_difference_pp"] = _max_rate_diff(fp32["heldout"], int8["heldout"])
    return int8


def _max_rate_diff(a: dict, b: dict) -> float:
    diffs = [abs(a["apcer"][k] - b["apcer"][k]) for k in a["apcer"]]
    for k in ("bpcer", "bpcer20", "bpcer100", "real_nir_bpcer"):
        if a.get(k) is not None and b.get(k) is not None:
            diffs.append(abs(a[k] - b[k]))
    return round(100 * max(diffs), 3)


def sr_eval(sess, lr, hr, reference=None) -> dict:
    """PSNR/SSIM of ``sess`` against HR and bicubic; with ``reference`` (the fp32 session of an
    int8 ``sess``) also the SNR of ``sess``'s output against the reference output."""
    rows, snr = [], []
    for i in range(len(lr)):
        x = lr[i].astype(np.float32) / 255.0
        y = hr[i].astype(np.float32) / 255.0
        sr = sess.run(None, {"capture": x[None, None]})[0][0, 0]
        rows.append(sr_quality(x, y, sr))
        if reference is not None:
            ref = reference.run(None, {"capture": x[None, None]})[0][0, 0]
            snr.append(10 * math.log10(np.sum(ref.astype(np.float64) ** 2) /
                                       max(np.sum((ref - sr).astype(np.float64) ** 2), 1e-12)))
    out = summarise_sr(rows)
    if snr:
        out["snr_vs_fp32_db"] = round(float(np.mean(snr)), 2)
    return out


def occlusion_map(lv_sess, img: np.ndarray, patch: int = 32, stride: int = 16) -> np.ndarray:
    """Evidence map for the decision: how much the decision's logit drops when a patch is
    replaced by a heavily blurred copy of the image (positive = the region supports it)."""
    base = float(_logit(run_liveness(lv_sess, img[None])[0]))
    sign = 1.0 if base > 0 else -1.0
    blur = cv2.GaussianBlur(img, (0, 0), 8)
    h, w = img.shape
    pos = [(r, c) for r in range(0, h - patch + 1, stride) for c in range(0, w - patch + 1, stride)]
    batch = np.repeat(img[None], len(pos), 0)
    for k, (r, c) in enumerate(pos):
        batch[k, r:r + patch, c:c + patch] = blur[r:r + patch, c:c + patch]
    lo = _logit(run_liveness(lv_sess, batch))
    heat = np.zeros((h, w), np.float64)
    cnt = np.zeros((h, w), np.float64)
    for k, (r, c) in enumerate(pos):
        heat[r:r + patch, c:c + patch] += sign * (base - lo[k])
        cnt[r:r + patch, c:c + patch] += 1
    return heat / np.maximum(cnt, 1)


def occlusion_png(lv_sess, examples: list[tuple[str, np.ndarray, float]], path: Path,
                  tile: int = 112) -> None:
    """Top row: SR images; bottom row: occlusion evidence for the model's decision."""
    cols = []
    for title, img, p in examples:
        heat = np.maximum(occlusion_map(lv_sess, img), 0)
        heat = heat / (heat.max() + 1e-9)
        g = cv2.resize((img * 255).astype(np.uint8), (tile, tile), interpolation=cv2.INTER_AREA)
        g3 = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
        hm = cv2.applyColorMap(cv2.resize((heat * 255).astype(np.uint8), (tile, tile)),
                               cv2.COLORMAP_JET)
        over = cv2.addWeighted(g3, 0.5, hm, 0.5, 0)
        lab = np.full((30, tile, 3), 255, np.uint8)
        cv2.putText(lab, title[:17], (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1)
        cv2.putText(lab, f"p(live) {p:.3f}", (2, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                    (0, 0, 0), 1)
        cols.append(np.vstack([g3, over, lab]))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.hstack(cols), [cv2.IMWRITE_PNG_COMPRESSION, 9])


def occlusion_sheet(sensor: str, sr_sess, lv_sess, caps: np.ndarray, cls: np.ndarray,
                    p: np.ndarray, path: Path) -> None:
    """Occlusion maps of the first bona fide and the top-scoring presentation of every
    species of a held-out set.  Synthetic examples only: the sheet goes into docs/, and no
    real research capture (or an image made from one) may go into the project's git."""
    ex = []
    for c in ["bona_fide"] + list(SPECIES[sensor]):
        idx = np.where(cls == c)[0]
        if len(idx):
            i = idx[np.argmax(p[idx])] if c != "bona_fide" else idx[0]
            ex.append((c if c == "bona_fide" else c + " (top)",
                       run_sr(sr_sess, caps[i:i + 1], as_u8=False)[0], float(p[i])))
    occlusion_png(lv_sess, ex, path)
