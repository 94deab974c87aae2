"""What the sensor-branch training writes about its models: manifest entries (the words of
the data and of each fine-tune round, metrics, thresholds) and file sizes and latencies."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.train import sensor_quant as Q
from tools.train.sensor_config import LATER_ROUNDS, SPLITS, SR_ARCH
from tools.train.sensor_data import synth_command


def model_perf(paths: list[Path]) -> dict:
    """Bytes and 1-thread median latency of each file (int8 files: which operators run in
    int8)."""
    feeds = {"capture": {"capture": np.random.default_rng(0).random((1, 1, 128, 128),
                                                                    np.float32)},
             "image": {"image": np.random.default_rng(0).random((1, 1, 256, 256),
                                                                np.float32)}}
    perf = {}
    for path in paths:
        feed = feeds["capture" if path.name.startswith("sr_") else "image"]
        perf[path.name] = {"bytes": path.stat().st_size,
                           "latency_ms_1thread": Q.latency_ms(path, feed, threads=1)}
        if path.name.endswith("_int8.onnx"):
            perf[path.name]["operators"] = Q.int8_report(path)
    return perf


_ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh",
             8: "eighth"}
MIRROR_WORDS = ("; exported with the mirror average (logits of the image and its left-right "
                "mirror averaged before the softmax)")


def round_text(k: int, rk: dict, sensor: str) -> str:
    """The manifest's words for fine-tune round ``k`` (``rk``: the report of
    sensor_rounds.finetune_block)."""
    c = rk["config"]
    more = rk.get("extra_sets", []) + [rk["mined_set"]]
    start = "from the model before it"
    if c.get("fused"):
        start += " with BatchNorm folded"
    if c.get("widen"):
        start += f", widened function-preserving to {[w for w, _ in c['widen']]} channels"
    pool = "the pool grown by" if not c.get("pool_only") else "a pool of"
    photo = "printed_photo" if sensor == "nir" else "photo"
    return (f"; a {_ORDINALS.get(k, f'#{k}')} round ({c['steps']} steps, learning rate "
            f"{c['lr']:g}) {start}, on {pool} {' and '.join(dict.fromkeys(more))}, every "
            f"image of it scored by that model and its hardest {100 * c['hard_q']:g} % per "
            f"class drawn {1 + c['hard_extra']:g}x as often, the {photo} species "
            f"{100 * c['photo_share']:g} % of the attack half" + _resample_words(c))


def _resample_words(c: dict) -> str:
    """The words of a round's ``resample`` table (tools/train/resample_aug.py), or none."""
    rs = c.get("resample") or {}
    if not rs.get("copies"):
        return ""
    from tools.train.resample_aug import DEFAULTS

    s = {**DEFAULTS, **rs}
    return (f", with {rs['copies']} resampled copies of every capture before SR, every class "
            f"alike, each drawn as often as its original (rotation within +-{s['rot_deg']:g} "
            f"deg, scale 1 +- {s['scale']:g}, shift within +-{s['shift_px']:g} px, nearest / "
            f"linear / area / cubic interpolation, {100 * s['blur_p']:g} % blurred, "
            f"{100 * s['noise_p']:g} % noised; seed {rs.get('seed', 0)})")


def liveness_entries(sensor: str, config: dict, metrics: dict, data: str, thr: float,
                     int8: dict, perf: dict, n_calib: int, common: dict) -> None:
    """Manifest entries of liveness_<sensor>.onnx and its int8 file.  (The notes' words --
    "Seed 001" here, "claim 2" in sr_entries, "claim-9" in sensor_retrain -- are what the
    shipped manifest says: kept as they are.)"""
    from tools.manifest import update_entry

    update_entry(f"liveness_{sensor}.onnx", metrics=metrics, data=data,
                 notes=f"Seed 001 liveness model, {sensor}: SR image (N,1,256,256) in [0,1] -> "
                       f"probs (N,2) softmax over (non-live, live). Live iff probs[:,1] > "
                       f"threshold (equality is not live). Conv layers (channels, max-pool after) "
                       f"{tuple(tuple(x) for x in config['plan'])} (first conv "
                       f"{'4x4 stride 2' if config['stem'] == 's2' else '3x3 stride 1'} "
                       f"without BN), global average + max pooling, linear.",
                 extra={"threshold": thr, "input": f"output of sr_{sensor}.onnx",
                        "sr_model": f"sr_{sensor}.onnx"}, **common)
    update_entry(f"liveness_{sensor}_int8.onnx", metrics={
        "heldout": int8["heldout"], "validation": int8["validation"],
        "heldout_at_fp32_threshold": int8["heldout_at_fp32_threshold"],
        "max_rate_difference_vs_fp32_pp": int8["max_rate_difference_pp"],
        **perf[f"liveness_{sensor}_int8.onnx"]},
        data=f"static int8 QDQ of liveness_{sensor}.onnx calibrated on the SR outputs of "
             f"{n_calib} training captures; threshold chosen on validation with "
             f"sr_{sensor}_int8.onnx in front",
        notes="int8 version of the fp32 liveness model (Softmax left in float)",
        extra={"threshold": int8["threshold"], "input": f"output of sr_{sensor}_int8.onnx",
               "sr_model": f"sr_{sensor}_int8.onnx",
               "quantized_from": f"liveness_{sensor}.onnx"}, **common)


def liveness_data(sensor: str, sizes: dict, real: dict) -> str:
    """The manifest's words for the data of a freshly trained liveness model: the synthetic
    sets of every split (``sizes``) and the real NIR captures (``real``: files per split)."""
    def palms(files):
        return len(set(f.parent.name for f in files))

    data_lv = [f"{s}: " + " and ".join(synth_command(sensor, sp) for sp in sizes[s])
               for s in SPLITS]
    if real["train"]:
        data_lv.append(
            f"real NIR bona fide (PolyU, centre-cropped to 128x128): training "
            f"{len(real['train'])} captures of {palms(real['train'])} palms; "
            f"validation {len(real['val'])} captures of {palms(real['val'])} "
            f"palms (split_subjects(250, 0.2, 0)); held-out {len(real['test'])} captures of "
            f"{palms(real['test'])} other palms (split_subjects(200, 0.25, 1))")
    return "; ".join(data_lv) + (f"; training images are the outputs of sr_{sensor}.onnx; "
                                 f"threshold chosen on validation only")


def rounds_data(ft_report: dict, sensor: str) -> str:
    """The manifest's words for the fine-tune rounds of a freshly trained liveness model."""
    data = (f"; then fine-tuned ({ft_report['config']['steps']} steps) on the training "
            f"sets + a fresh hard-example set ({ft_report['mined_set']}) + the real "
            f"training captures, as unrounded SR outputs, hardest presentations of the "
            f"fresh set drawn {1 + ft_report['config']['hard_extra']:g}x as often")
    for k in range(2, 2 + len(LATER_ROUNDS)):
        if f"round{k}" in ft_report:
            data += round_text(k, ft_report[f"round{k}"], sensor)
    return data + MIRROR_WORDS


def continued_data(entry: dict, rounds: list[str], reports: dict, sensor: str, cfg: dict,
                   src_sha: str, mirror: bool) -> tuple[dict, str]:
    """The fine-tune report and the data words of a liveness file's manifest ``entry`` after
    :func:`tools.train.sensor.continue_rounds` ran ``rounds`` on it: the earlier rounds are
    kept, each new one numbered after the rounds the entry already reports (not by its key)."""
    finetune = dict(entry["metrics"].get("finetune") or {})
    # the earlier words without the mirror note, which goes at the end again
    data = entry["data"].split("; exported with the mirror average")[0]
    for key in rounds:
        k = 1 + max((int(r[5:]) for r in finetune if r.startswith("round")), default=1)
        finetune[f"round{k}"] = reports[key]
        data += round_text(k, reports[key], sensor)
    data += (f"; rounds from {', '.join(rounds)} continued from the file with sha256 "
             f"{src_sha[:12]} (made by: {entry['command']}) by this command; the validation "
             f"and held-out sets are those of the profile now: " + "; ".join(
                 f"{s}: " + " and ".join(synth_command(sensor, sp)
                                         for sp in cfg["liveness"][sensor][s])
                 for s in ("val", "test")))
    if mirror:
        data += MIRROR_WORDS
    return finetune, data


def sr_entries(sensor: str, sr_report: dict, perf: dict, profile: str, iters: int,
               n_calib: int, common: dict) -> None:
    """Manifest entries of sr_<sensor>.onnx and its int8 file."""
    from tools.manifest import update_entry

    update_entry(f"sr_{sensor}.onnx", metrics={
        "heldout_synthetic": sr_report["heldout_synthetic"],
        **({"heldout_real_nir": sr_report["heldout_real_nir"]}
           if "heldout_real_nir" in sr_report else {}),
        "train_log": sr_report["history"][-3:], "profile": profile, "iters": iters,
        **perf[f"sr_{sensor}.onnx"]}, data="; ".join(sr_report["data"]),
        notes=f"Seed 001 SR (claim 2), {sensor}: capture (N,1,H,W) in [0,1] -> x2 image, clipped "
              f"to [0,1]. feature_extraction conv5x5 1->{SR_ARCH['c1']} ReLU; feature_mapping "
              f"{SR_ARCH['c1']}->{SR_ARCH['c2']} (+{SR_ARCH['mapping_layers'] - 1} x "
              f"{SR_ARCH['c2']}->{SR_ARCH['c2']}) conv3x3 ReLU; reconstruction conv3x3 -> 4 + "
              f"capture, DepthToSpace(2). PSNR/SSIM with 4 HR px shaved.",
        extra={"scale": 2, "stages": sr_report["channels"]}, **common)
    update_entry(f"sr_{sensor}_int8.onnx", metrics={
        "heldout_synthetic": sr_report["heldout_synthetic_int8"],
        **({"heldout_real_nir": sr_report["heldout_real_nir_int8"]}
           if "heldout_real_nir_int8" in sr_report else {}),
        **perf[f"sr_{sensor}_int8.onnx"]},
        data=f"static int8 QDQ of sr_{sensor}.onnx (per-channel weights, MinMax) calibrated on "
             f"{n_calib} training captures (bona fide and every species)",
        notes="int8 version of the fp32 SR model; see 'operators' for what runs in int8",
        extra={"scale": 2, "quantized_from": f"sr_{sensor}.onnx"}, **common)
