"""Leave-one-species-out evaluation of the liveness recipe (issue 21): for every attack species
of a sensor, a liveness model trained from scratch *without* that species, its threshold chosen
on validation data without it, and its APCER measured on held-out presentations of it -- how
the recipe does on an attack it has never seen.  ``python -m tools.train sensor-loso --sensor
xray|nir --profile quick``.

The recipe (profile key ``loso``, tools/train/profiles/sensor_quick.toml): the synthetic sets
``train``, ``val`` and ``test`` (seeds of those splits), every capture through the shipped SR
model (``sr_<sensor>.onnx``, unrounded float outputs as the gate feeds them), for NIR the
profile's real training / validation / held-out captures as bona fide; the liveness layout of
the shipped model of the sensor, trained from scratch for ``steps`` steps on random ``crop``
windows (a CPU budget: cheaper steps, scored on whole frames), half bona fide and half attacks
split evenly over the species left in.  The same run with every species in (``none`` left out)
is the reference: what each species' APCER is when it *was* seen.  The shipped SR model was
trained on pairs of the first species only; the SR stage is the same for every run.

The continuation recipe (``from_shipped = true``, profile ``species``): each run starts from the
liveness file in the models folder -- one that has not seen the composite species -- and trains
on from it on whole frames for a fixed number of steps, like a fine-tune round; for a species
that file never saw this is a leave-one-species-out test of the round's recipe, for a species
it was trained on it only says whether the round, without it, forgets it.  ``max_bpcer``: the
threshold rule of the rounds (tools/train/sensor_scoring.choose).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from tools.train import sensor_quant as Q
from tools.train.liveness_model import load_from_onnx, predict, train_liveness
from tools.train.sensor_config import CONFIG, SPECIES, SPLITS, log
from tools.train.sensor_data import data_root, liveness_set, load_liveness_dir, real_captures
from tools.train.sensor_data import synth_command
from tools.train.sensor_scoring import choose, rates, run_sr
from tools.train.sensor_train import class_weights

NONE = "none"
"""The reference run: no species left out."""


def loso_split(cls: np.ndarray, left_out: str) -> np.ndarray:
    """Which presentations a run without ``left_out`` may train or choose on (all for
    :data:`NONE`)."""
    return np.ones(len(cls), bool) if left_out == NONE else cls != left_out


def loso_threshold(p_val: np.ndarray, cls_val: np.ndarray, p_real_val: np.ndarray,
                   left_out: str, max_bpcer: float | None = None) -> float:
    """The validation threshold of a run without ``left_out`` (chosen as the shipped one:
    minimise max(APCER_max, BPCER), or with ``max_bpcer`` the highest that keeps BPCER at or
    below it) on validation presentations without that species."""
    keep = loso_split(cls_val, left_out)
    return choose(p_val[keep], cls_val[keep], p_real_val, max_bpcer)


def _sr_sets(sensor: str, lc: dict, root: Path, sr_sess, cfg: dict) -> dict:
    """SR outputs (float16), class names, and real bona fide SR outputs of each split."""
    _, real_caps = real_captures(cfg, sensor)
    out = {}
    for split in SPLITS:
        caps, _, cls = load_liveness_dir(liveness_set(root, sensor, split, tuple(lc[split])))
        t = time.time()
        sr = run_sr(sr_sess, caps, as_u8=False, dtype=np.float16)
        real = (run_sr(sr_sess, real_caps[split], as_u8=False, dtype=np.float16)
                if len(real_caps[split]) else np.zeros((0,) + sr.shape[1:], np.float16))
        log(f"[{sensor}] loso {split}: SR of {len(caps)} + {len(real)} real "
            f"{time.time() - t:.0f} s")
        out[split] = (sr, cls, real)
    return out


def loso_run(sensor: str, left_out: str, sets: dict, lc: dict, config: dict | None,
             seed: int = 0, start=None) -> dict:
    """Train without ``left_out`` (from scratch, or on from the liveness file ``start``),
    choose the threshold on validation without it, measure the held-out set (every species,
    the left-out one included)."""
    sr, cls, real = sets["train"]
    keep = loso_split(cls, left_out)
    images = np.concatenate([sr[keep], real])
    tcls = np.concatenate([cls[keep], np.full(len(real), "bona_fide")])
    real_mask = np.arange(len(images)) >= keep.sum()
    y = (tcls == "bona_fide").astype(np.int64)
    t = time.time()
    model, hist = train_liveness(images, y, steps=lc["steps"], seed=seed,
                                 weights=class_weights(tcls, real_mask), config=config,
                                 model=load_from_onnx(start) if start else None,
                                 lr_rate=lc["lr"], crop=lc.get("crop"),
                                 log_every=max(lc["steps"] // 4, 1), log=log)
    seconds = time.time() - t
    p = {s: (predict(model, sets[s][0], mirror=True), predict(model, sets[s][2], mirror=True))
         for s in ("val", "test")}
    thr = loso_threshold(p["val"][0], sets["val"][1], p["val"][1], left_out,
                         lc.get("max_bpcer"))
    held = rates(p["test"][0], sets["test"][1], thr, p["test"][1])
    val = rates(p["val"][0], sets["val"][1], thr, p["val"][1])
    out = {"left_out": left_out, "threshold": thr, "heldout": held,
           "validation_bpcer": val["bpcer"], "train_seconds": round(seconds, 1),
           "final_train_log": hist[-1]}
    if left_out != NONE:
        out["apcer_left_out"] = held["apcer"][left_out]
        seen = {k: v for k, v in held["apcer"].items() if k != left_out}
        out["apcer_max_seen"] = max(seen.values()) if seen else None
    return out


def run_loso(sensor: str, profile: str, work: Path, models: Path, threads: int = 1,
             species=None, seed: int = 0) -> dict:
    """Every species of ``sensor`` left out in turn (or only ``species``), plus the reference
    run with none left out; writes ``WORK/loso_<sensor>.json`` and returns the report."""
    cfg = CONFIG[profile]
    lc = cfg["loso"][sensor]
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    todo = [NONE] + list(species or SPECIES[sensor])
    unknown = set(todo) - {NONE, *SPECIES[sensor]}
    if unknown:
        raise ValueError(f"unknown species {sorted(unknown)} for {sensor}")
    sr_sess = Q.session(Path(models) / f"sr_{sensor}.onnx", threads)
    sets = _sr_sets(sensor, lc, data_root(work), sr_sess, cfg)
    path = work / f"loso_{sensor}.json"
    report = {"sensor": sensor, "profile": profile, "recipe": dict(lc),
              "models": str(models),
              "data": {s: synth_command(sensor, tuple(lc[s])) for s in SPLITS},
              "real_nir_captures": {s: int(len(sets[s][2])) for s in SPLITS},
              "runs": {}}
    for left_out in todo:
        log(f"[{sensor}] loso: without {left_out}")
        start = Path(models) / f"liveness_{sensor}.onnx" if lc.get("from_shipped") else None
        r = loso_run(sensor, left_out, sets, lc, cfg["liveness_config"][sensor], seed, start)
        report["runs"][left_out] = r
        log(f"[{sensor}] loso without {left_out}: threshold {r['threshold']:.4g} "
            f"APCER {json.dumps(r['heldout']['apcer'])} BPCER {r['heldout']['bpcer']}")
        path.write_text(json.dumps(report, indent=1, default=float))
    report["summary"] = loso_summary(report)
    path.write_text(json.dumps(report, indent=1, default=float))
    log(f"report: {path}")
    return report


def loso_summary(report: dict) -> dict:
    """Per species: APCER when left out, APCER when seen (the reference run), and the
    species above 5 % when left out."""
    runs = report["runs"]
    ref = runs.get(NONE, {}).get("heldout", {}).get("apcer", {})
    rows = {sp: {"apcer_left_out": r["apcer_left_out"], "apcer_seen": ref.get(sp),
                 "bpcer": r["heldout"]["bpcer"], "n": r["heldout"]["n_attack"][sp]}
            for sp, r in runs.items() if sp != NONE}
    return {"species": rows,
            "above_5_percent": sorted(sp for sp, v in rows.items() if v["apcer_left_out"] > 0.05)}
