"""Train, evaluate, quantise and export the transmission-sensor branch (seed 001) for both
sensor kinds (``python -m tools.train sensor --profile quick|full``), run later fine-tune rounds
on a shipped liveness file (``--continue-rounds KEY``), and fine-tune the liveness model on
reviewed presentations (``python -m tools.train liveness --retrain-from DIR``, claim 9).

Per sensor: SR (train, export, PSNR/SSIM vs bicubic on held-out pairs) -> liveness on the SR
output (train, fine-tune rounds, threshold on validation, rates on the held-out set) -> the
same classifier without SR (ablation) -> int8 QDQ of both models (calibrated on training
frames) with their own validation threshold -> sizes, latencies, int8 operators -> occlusion
maps -> manifest entries.

Where each part lives:

* tools/train/profiles/sensor_{quick,full}.toml -- the profiles: data sets, step counts, the
  fine-tune rounds and why each is set so (read by sensor_config.py, with the seeds);
* sensor_data.py -- the synthetic sets, the real NIR captures and SR pairs;
* sensor_scoring.py -- running the exported models, rates, thresholds, occlusion maps;
* sensor_train.py -- training (or reloading) the SR and liveness models, int8;
* sensor_rounds.py -- the hard-example fine-tune rounds;
* sensor_report.py -- manifest entries, the words of each round, sizes and latencies;
* sensor_retrain.py -- the fine-tune on reviewed presentations;
* this file -- the three commands, step by step.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from device.models.sensor_branch import SENSORS
from device.synth.placement import use_placement
from tools.paths import MODELS_DIR, PROJECT_ROOT
from tools.train import sensor_quant as Q
from tools.train.liveness_model import (export_liveness_onnx, load_from_onnx, onnx_mirror,
                                        predict)
from tools.train.sensor_cache import SRCache
from tools.train.sensor_config import (CONFIG, LATER_ROUNDS, LIVENESS_SEEDS, REAL_PAIR_SEED,
                                       SPECIES, SR_ARCH, SR_SEEDS, log)
from tools.train.sensor_data import (data_root, liveness_set, liveness_set_dir,
                                     load_liveness_dir, load_pairs, load_sets, load_split,
                                     pair_set, pairs_command, real_captures, real_nir_dir,
                                     real_nir_files, real_nir_split, real_pairs, sr_pair_set,
                                     synth_command, training_pool, write_real_heldout)
from tools.train.sensor_report import (_ORDINALS, continued_data, liveness_data,
                                       liveness_entries, model_perf, round_text, rounds_data,
                                       sr_entries)
from tools.train.sensor_retrain import Q_sha, retrain
from tools.train.sensor_rounds import (_finetune_weights, finetune_block, finetune_liveness,
                                       finetune_set_specs, run_rounds)
from tools.train.sensor_scoring import (branch_scores, by_species, choose, fp32_rates,
                                        int8_rates, occlusion_map, occlusion_png,
                                        occlusion_sheet, rates, run_liveness, run_sr,
                                        species_margins, split_scores, sr_eval)
from tools.train.sensor_train import (calibration_captures, class_weights, liveness_block,
                                      quantize_liveness, quantize_sr, sr_block)

# this module's commands, and the names moved out of it that other code imports from here
# (tests, tools/train/__main__.py)
__all__ = ["CONFIG", "LATER_ROUNDS", "LIVENESS_SEEDS", "REAL_PAIR_SEED", "SENSORS", "SPECIES",
           "SR_ARCH", "SR_SEEDS", "_ORDINALS", "_finetune_weights", "Q_sha", "branch_scores",
           "by_species", "choose", "continue_rounds", "data_root", "finetune_liveness",
           "finetune_set_specs", "liveness_set", "liveness_set_dir", "load_liveness_dir",
           "load_pairs", "load_split", "model_perf", "occlusion_map", "occlusion_png",
           "pair_set", "pairs_command", "rates", "real_nir_dir", "real_nir_files",
           "real_nir_split", "real_pairs", "retrain", "round_text", "run", "run_liveness",
           "run_sensor", "run_sr", "species_margins", "sr_pair_set", "synth_command"]


def _docs_dir(models: Path, work: Path) -> Path:
    """Where the occlusion sheets go: docs/ for the shipped models, else WORK/docs."""
    return PROJECT_ROOT / "docs" if models.resolve() == MODELS_DIR.resolve() else work / "docs"


# --------------------------------------------------------------------------------------------
# python -m tools.train sensor: the steps of one sensor


def _train_liveness(sensor, cfg, work, sr_sess, train_caps, train_y, w, steps, seed, resume):
    """Train (or reload) the liveness model on the SR outputs of the training captures;
    returns (model, history, training seconds)."""
    def train_sr_imgs():
        t = time.time()
        out = run_sr(sr_sess, train_caps)
        log(f"[{sensor}] SR of {len(train_caps)} training captures: {time.time() - t:.0f} s")
        return out

    return liveness_block(work, f"liveness_{sensor}.pt", resume, train_sr_imgs, train_y, steps,
                          seed, w, cfg["liveness_crop"][sensor], cfg["liveness_config"][sensor])


def _export_and_score(sensor, lv, lv_path, sr_sess, caps, cls, real_caps, threads,
                      cache=None, max_bpcer=None, **export):
    """Export the liveness model, score validation and held-out data through SR -> liveness
    (SR outputs from ``cache`` when given), choose the threshold on validation (rule:
    :func:`tools.train.sensor_scoring.choose`); returns (session, synthetic scores, fp32
    rates)."""
    export_liveness_onnx(lv, lv_path, **export)
    lv_sess = Q.session(lv_path, threads)
    p_syn, p_real = split_scores(sr_sess, lv_sess, caps, real_caps, cache)
    fp32 = fp32_rates((p_syn, p_real), cls, max_bpcer)
    log(f"[{sensor}] fp32 threshold {fp32['threshold']:.4g} held-out "
        f"{json.dumps(fp32['heldout'])}")
    return lv_sess, p_syn, fp32


def _ablation(sensor, cfg, work, resume, train_caps, train_y, w, steps, seed, caps, cls,
              real_caps, before) -> dict:
    """The same classifier trained on the captures themselves (no SR), and, when there were
    fine-tune rounds, the SR model before them (the same recipe as the one without SR)."""
    crop = cfg["liveness_crop"][sensor]
    lv_raw, raw_hist, raw_seconds = liveness_block(
        work, f"liveness_{sensor}_nosr.pt", resume, train_caps, train_y, steps, seed, w,
        crop if crop and crop < train_caps.shape[1] else None, cfg["liveness_config"][sensor])
    q = {s: predict(lv_raw, caps[s], mirror=True) for s in ("val", "test")}
    qr = {s: predict(lv_raw, real_caps[s], mirror=True) for s in ("val", "test")}
    thr_raw = choose(q["val"], cls["val"], qr["val"])
    ablation = {"without_sr": {"threshold": thr_raw,
                               "heldout": rates(q["test"], cls["test"], thr_raw, qr["test"]),
                               "validation": rates(q["val"], cls["val"], thr_raw, qr["val"]),
                               "final_train_log": raw_hist[-1],
                               "train_seconds": round(raw_seconds, 1)}}
    _, att_raw = by_species(q["test"], cls["test"])
    ablation["without_sr"]["heldout"]["species_margin_logit"] = species_margins(att_raw, thr_raw)
    log(f"[{sensor}] without SR: held-out {json.dumps(ablation['without_sr']['heldout'])}")
    if before is not None:
        ablation["with_sr_same_recipe"] = before
        log(f"[{sensor}] with SR, same recipe (before the fine-tune): held-out "
            f"{json.dumps(before['heldout'])}")
    return ablation


def _int8_liveness(lv_path, lv8_path, sr_sess, sr8_sess, calib, caps, cls, real_caps, fp32,
                   threads, cache8=None, max_bpcer=None) -> dict:
    """Quantise the liveness file and measure it behind the int8 SR model (its own threshold
    on validation, the same rule as fp32; SR outputs from ``cache8`` when given)."""
    quantize_liveness(lv_path, lv8_path, sr_sess, calib)
    return int8_rates(split_scores(sr8_sess, Q.session(lv8_path, threads), caps, real_caps,
                                   cache8), cls, fp32, max_bpcer)


def _int8(sensor, models, sr_path, lv_path, sr_sess, calib_caps, caps, cls, real_caps, fp32,
          threads, sr_report, sr_test_pairs, real_test) -> tuple[dict, Path, Path]:
    """int8 SR and liveness files, the liveness rates, and the int8 SR quality (into
    ``sr_report``); returns (int8 rates, SR int8 path, liveness int8 path)."""
    sr8_path = models / f"sr_{sensor}_int8.onnx"
    quantize_sr(sr_path, sr8_path, calib_caps)
    sr8_sess = Q.session(sr8_path, threads)
    lv8_path = models / f"liveness_{sensor}_int8.onnx"
    int8 = _int8_liveness(lv_path, lv8_path, sr_sess, sr8_sess, calib_caps, caps, cls,
                          real_caps, fp32, threads)
    sr_report["heldout_synthetic_int8"] = sr_eval(sr8_sess, *sr_test_pairs, reference=sr_sess)
    if sensor == "nir" and real_test:
        rl, rh = real_pairs(real_test, SR_SEEDS["test"], random_crop=False)
        sr_report["heldout_real_nir_int8"] = sr_eval(sr8_sess, rl, rh, reference=sr_sess)
    log(f"[{sensor}] int8 threshold {int8['threshold']:.4g} held-out "
        f"{json.dumps(int8['heldout'])}")
    return int8, sr8_path, lv8_path


def run_sensor(sensor: str, cfg: dict, root: Path, work: Path, models: Path, docs: Path,
               steps: int, seed: int, threads: int, command: str, manifest: Path,
               profile: str, resume: bool = False) -> dict:
    """One sensor from data to manifest entries (the steps above, in order)."""
    t_all = time.time()
    real, real_caps = real_captures(cfg, sensor)
    sizes = cfg["liveness"][sensor]
    caps, labels, cls = load_sets(root, sensor, sizes)
    log(f"[{sensor}] liveness data: " + ", ".join(
        f"{s} {len(caps[s])} synthetic + {len(real_caps[s])} real" for s in caps))
    sr_report, sr_sess, sr_test_pairs, sr_path = sr_block(sensor, cfg, root, work, models,
                                                          threads, seed, resume)
    train_caps, train_cls, real_mask = training_pool(caps, cls, real_caps)
    train_y = (train_cls == "bona_fide").astype(np.int64)
    w = class_weights(train_cls, real_mask)
    lv, lv_hist, lv_seconds = _train_liveness(sensor, cfg, work, sr_sess, train_caps, train_y,
                                              w, steps, seed, resume)
    lv, ft_report, before = run_rounds(sensor, cfg, lv, root, work, models, sr_sess, threads,
                                       caps, cls, real_caps, resume)
    lv_path = models / f"liveness_{sensor}.onnx"
    lv_sess, p_syn, fp32 = _export_and_score(sensor, lv, lv_path, sr_sess, caps, cls,
                                             real_caps, threads)
    ablation = _ablation(sensor, cfg, work, resume, train_caps, train_y, w, steps, seed, caps,
                         cls, real_caps, before)
    calib_caps = calibration_captures(train_caps, w, cfg["calibration_frames"], seed)
    int8, sr8_path, lv8_path = _int8(sensor, models, sr_path, lv_path, sr_sess, calib_caps,
                                     caps, cls, real_caps, fp32, threads, sr_report,
                                     sr_test_pairs, real["test"])
    perf = model_perf([sr_path, sr8_path, lv_path, lv8_path])
    log(f"[{sensor}] perf {json.dumps(perf)}")
    occ_path = None
    if cfg["occlusion"]:      # occlusion maps on a few held-out examples
        occ_path = docs / f"liveness_occlusion_{sensor}.png"
        occlusion_sheet(sensor, sr_sess, lv_sess, caps["test"], cls["test"], p_syn["test"],
                        occ_path)
    common = {"command": command, "manifest_path": manifest}
    sr_entries(sensor, sr_report, perf, profile, cfg["sr_iters"], len(calib_caps), common)
    lv_metrics = {"heldout": fp32["heldout"], "validation": fp32["validation"],
                  "ablation_without_sr": ablation["without_sr"]["heldout"],
                  "ablation_with_sr_same_recipe": (ablation.get("with_sr_same_recipe") or {}
                                                   ).get("heldout"),
                  "train_log": lv_hist, "steps": steps, "profile": profile,
                  "train_crop": cfg["liveness_crop"][sensor], **perf[f"liveness_{sensor}.onnx"]}
    data_lv = liveness_data(sensor, sizes, real)
    if ft_report:
        lv_metrics["finetune"] = ft_report
        data_lv += rounds_data(ft_report, sensor)
    liveness_entries(sensor, lv.config, lv_metrics, data_lv, fp32["threshold"], int8, perf,
                     len(calib_caps), common)
    return {"sr": sr_report, "liveness_fp32": fp32, "liveness_int8": int8,
            "ablation": ablation, "perf": perf,
            "occlusion_png": str(occ_path) if occ_path else None,
            "liveness_train_log": lv_hist, "liveness_train_seconds": round(lv_seconds, 1),
            "finetune": ft_report,
            "heldout_dirs": {"synthetic": [str(liveness_set(root, sensor, "test", sp))
                                           for sp in sizes["test"]]},
            "seconds": round(time.time() - t_all, 1)}


def run(steps: int, seed: int, work: Path, models: Path, command: str, profile: str,
        sensors=SENSORS, threads: int = 0, resume: bool = False) -> dict:
    """``python -m tools.train sensor``: both sensors, SR + liveness, fp32 + int8."""
    cfg = CONFIG[profile]
    work = Path(work)
    root = data_root(work)
    models = Path(models)
    models.mkdir(parents=True, exist_ok=True)
    manifest = models / "manifest.json"
    docs = _docs_dir(models, work)
    report = {"profile": profile, "command": command}
    split = real_nir_split()
    if split["test"] and "nir" in sensors:
        live, pairs = write_real_heldout(root, split["test"][:cfg["real_subjects"]["test"]])
        report["real_nir_heldout_dirs"] = {"liveness": str(live), "sr_pairs": str(pairs)}
    name = "sensor_report.json" if len(sensors) > 1 else f"sensor_report_{sensors[0]}.json"
    for sensor in sensors:
        report[sensor] = run_sensor(sensor, cfg, root, work, models, docs, steps, seed, threads,
                                    command, manifest, profile, resume)
        (work / name).write_text(json.dumps(report, indent=2, default=float))
    log(f"report: {work / name}")
    return report


# --------------------------------------------------------------------------------------------
# python -m tools.train sensor --continue-rounds KEY ...


def _shipped_entry(manifest: Path, lv_path: Path) -> tuple[dict, str]:
    """The manifest entry of a liveness file and the file's sha256 (which must match it)."""
    from tools.manifest import sha256_file

    entry = json.loads(manifest.read_text())["models"][lv_path.name]
    src_sha = sha256_file(lv_path)
    if src_sha != entry["sha256"]:
        raise ValueError(f"{lv_path} does not match its manifest entry")
    return entry, src_sha


def continue_rounds(sensor: str, rounds: list[str], work: Path, models: Path, command: str,
                    profile: str, threads: int = 1, seed: int = 0,
                    resume: bool = False) -> dict:
    """Run fine-tune rounds of ``CONFIG[profile]`` (keys such as ``finetune4``) on the liveness
    file in ``models`` -- the model the earlier rounds made, whose training checkpoints need
    not be here -- with ``sr_<sensor>.onnx`` unchanged; then export fp32 and int8 again,
    choose both thresholds on validation, measure the held-out sets, and update the two
    liveness entries of the manifest (the earlier rounds' data and the without-SR ablation are
    kept).  ``python -m tools.train sensor --continue-rounds KEY ...``."""
    cfg = CONFIG[profile]
    use_placement(cfg.get("placement", "centred"))    # the sets the profile's rounds name
    missing = [k for k in rounds if not cfg.get(k, {}).get(sensor)]
    if missing:
        raise ValueError(f"profile {profile!r} has no round {missing} for {sensor}")
    models, work = Path(models), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    root = data_root(work)
    manifest = models / "manifest.json"
    lv_path = models / f"liveness_{sensor}.onnx"
    entry, src_sha = _shipped_entry(manifest, lv_path)
    sr_sess = Q.session(models / f"sr_{sensor}.onnx", threads)
    _, real_caps = real_captures(cfg, sensor)
    # rounds whose pool leaves the first training sets out do not need them written or read:
    # int8 is then calibrated on the last round's fresh set
    pool_only = all(cfg[k][sensor].get("pool_only") for k in rounds)
    caps, _, cls = load_sets(root, sensor, cfg["liveness"][sensor],
                             ("val", "test") if pool_only else ("train", "val", "test"))
    model, mirror = load_from_onnx(lv_path), onnx_mirror(lv_path)
    # SR outputs kept on disk (pool, validation, held-out; fp32 and int8 SR)
    cache = SRCache(sr_sess, models / f"sr_{sensor}.onnx", work / "sr_cache")
    # the threshold rule of the last round: ``max_bpcer`` = the highest validation threshold
    # whose BPCER (synthetic and real each) stays at or below it; else the minimax rule
    max_bpcer = cfg[rounds[-1]][sensor].get("max_bpcer")
    reports = {}
    for key in rounds:
        # the file's function has its BatchNorm folded already
        model, reports[key] = finetune_block(sensor, dict(cfg[key][sensor], fused=True), model,
                                             root, work, models, sr_sess, threads, caps["train"],
                                             cls["train"], real_caps["train"], resume, name=key,
                                             cache=cache)
    lv_sess, p_syn, fp32 = _export_and_score(sensor, model, lv_path, sr_sess, caps, cls,
                                             real_caps, threads, cache=cache,
                                             max_bpcer=max_bpcer, mirror=mirror)
    if pool_only:
        m_caps, _, m_cls = load_liveness_dir(liveness_set(root, sensor, "train",
                                                          cfg[rounds[-1]][sensor]["mine"]))
        caps = dict(caps, train=m_caps)
        cls = dict(cls, train=m_cls)
    train_caps, train_cls, real_mask = training_pool(caps, cls, real_caps)
    calib = calibration_captures(train_caps, class_weights(train_cls, real_mask),
                                 cfg["calibration_frames"], seed)
    lv8_path = models / f"liveness_{sensor}_int8.onnx"
    sr8_sess = Q.session(models / f"sr_{sensor}_int8.onnx", threads)
    cache8 = SRCache(sr8_sess, models / f"sr_{sensor}_int8.onnx", work / "sr_cache")
    int8 = _int8_liveness(lv_path, lv8_path, sr_sess, sr8_sess, calib, caps, cls, real_caps,
                          fp32, threads, cache8, max_bpcer)
    log(f"[{sensor}] int8 threshold {int8['threshold']:.4g} held-out "
        f"{json.dumps(int8['heldout'])}")
    perf = model_perf([lv_path, lv8_path])
    if cfg["occlusion"]:
        docs = _docs_dir(models, work)
        docs.mkdir(parents=True, exist_ok=True)
        occlusion_sheet(sensor, sr_sess, lv_sess, caps["test"], cls["test"], p_syn["test"],
                        docs / f"liveness_occlusion_{sensor}.png")
    finetune, data = continued_data(entry, rounds, reports, sensor, cfg, src_sha, mirror)
    metrics = {**entry["metrics"], "heldout": fp32["heldout"], "validation": fp32["validation"],
               "finetune": finetune, **perf[lv_path.name]}
    liveness_entries(sensor, model.config, metrics, data, fp32["threshold"], int8, perf,
                     len(calib), {"command": command, "manifest_path": manifest})
    report = {"rounds": reports, "liveness_fp32": fp32, "liveness_int8": int8, "perf": perf,
              "continued_from_sha256": src_sha}
    (work / f"continue_{sensor}.json").write_text(json.dumps(report, indent=2, default=float))
    return report
