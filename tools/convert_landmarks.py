"""Convert MediaPipe's hand-landmark networks to ONNX, quantise them to int8, measure them
against MediaPipe itself and write their manifest entries.

    python -m tools.convert_landmarks [--models DIR] [--calib DIR] [--eval DIR ...]
    python -m tools.convert_landmarks --fixture tests/fixtures/hand_landmarks

Run it in a venv with the ``landmarks`` extra (``pip install .[landmarks]``: mediapipe==0.10.21,
tflite2onnx, onnx); the gate itself never imports mediapipe. Steps:

1. ``mediapipe/modules/hand_landmark/hand_landmark_{full,lite}.tflite`` from the installed
   mediapipe wheel (Apache-2.0) -> ``tflite2onnx`` -> opset 13 (per-channel int8 needs it),
   inputs/outputs renamed ``image`` (1x3x224x224 RGB in [0, 1]) -> ``landmarks`` (1x63: x, y, z
   in crop pixels), ``presence``, ``handedness`` (probabilities), ``world_landmarks`` (1x63) ->
   ``models/hand_landmark.onnx``, ``hand_landmark_lite.onnx``.
2. MediaPipe's own landmarks (``mp.solutions.hands``, static images; model_complexity 1 for
   full, 0 for lite) on the calibration and evaluation photos.
3. int8: ``quantize_static`` (QDQ, per-channel int8 weights, uint8 activations, MinMax) on
   the calibration photos (default: NTUST ntust-hp), each as MediaPipe's crop and as the
   gate's first, whole-frame crop (what the network sees on the first pass); the heads (four
   Gemm, two Sigmoid) stay float: quantised, the landmark head's rounding turned 2 % of the
   NTUST photos into gross errors, and the presence logit's range, calibrated on hands only,
   clipped every negative logit to 0, so frames without a hand read presence 0.5 (measured)
   -> ``*_int8.onnx``.
4. Landmark error against MediaPipe's own landmarks on the evaluation photos (default: all of
   NTUST; ntust-ip was not used for calibration), pixels of the 224 crop (MediaPipe's crop rule
   applied to its landmarks): (a) ``on_mediapipe_crop``: the network on that crop, one pass;
   (b) ``front_end``: the gate's landmark detection (whole-frame first crops, refined on its own
   crops, :class:`device.vision.landmarks.Landmarker`), with the photos where it found a hand.
5. Manifest entries (``tools.manifest.update_entry``) with the licence and provenance.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from device.sources.layout import IMAGE_EXTENSIONS
from device.models.ort_session import session_options
from device.vision.landmarks import (Crop, Landmarker, crop_from_landmarks, frame_crop,
                                     to_rgb_input)
from tools.paths import MODELS_DIR, real_dir

RENAME = {"input_1": "image", "Identity": "landmarks", "Identity_1": "presence",
          "Identity_2": "handedness", "Identity_3": "world_landmarks"}
FILES = {"full": "hand_landmark.onnx", "lite": "hand_landmark_lite.onnx"}
COMPLEXITY = {"full": 1, "lite": 0}
COMMAND = "python -m tools.convert_landmarks"


def tflite_paths() -> tuple[dict, str]:
    import mediapipe as mp
    d = Path(mp.__file__).parent / "modules" / "hand_landmark"
    return {k: d / f"hand_landmark_{k}.tflite" for k in FILES}, mp.__version__


def convert(tflite: Path, dst: Path) -> None:
    """tflite2onnx, then opset 13 and readable names."""
    import onnx
    import tflite2onnx
    from onnx import version_converter
    with tempfile.TemporaryDirectory() as td:
        raw = Path(td) / "raw.onnx"
        tflite2onnx.convert(str(tflite), str(raw))
        m = version_converter.convert_version(onnx.load(str(raw)), 13)
    g = m.graph
    for n in g.node:
        n.input[:] = [RENAME.get(x, x) for x in n.input]
        n.output[:] = [RENAME.get(x, x) for x in n.output]
    for v in list(g.input) + list(g.output):
        v.name = RENAME.get(v.name, v.name)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


def list_images(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)


def mediapipe_landmarks(paths: list[Path], complexity: int) -> list[np.ndarray | None]:
    """MediaPipe's 21 landmarks (pixel-index coordinates, z scaled like x) or None."""
    import mediapipe as mp
    out = []
    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=1,
                                  model_complexity=complexity,
                                  min_detection_confidence=0.5) as hands:
        for p in paths:
            im = cv2.imread(str(p))
            h, w = im.shape[:2]
            r = hands.process(cv2.cvtColor(im, cv2.COLOR_BGR2RGB))
            if not r.multi_hand_landmarks:
                out.append(None)
                continue
            out.append(np.array([[q.x * w - 0.5, q.y * h - 0.5, q.z * w]
                                 for q in r.multi_hand_landmarks[0].landmark]))
    return out


CALIBRATION = ("minmax", "percentile", "entropy")


def quantize(src: Path, dst: Path, frames: list[np.ndarray], method: str = "minmax",
             float_convs: int = 0) -> None:
    """``method``: onnxruntime's activation calibration (MinMax as shipped, Percentile
    99.999 or Entropy); ``float_convs``: that many of the network's first Conv nodes stay in
    float besides the heads."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                          QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"image": f} for f in frames])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as td:
        pre = Path(td) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        nodes = onnx.load(str(pre)).graph.node
        heads = [n.name for n in nodes if n.op_type in ("Gemm", "Sigmoid")]
        heads += [n.name for n in nodes if n.op_type == "Conv"][:float_convs]
        cal = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}[method]
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=heads,
                        calibrate_method=cal)


def session_fn(path: Path):
    import onnxruntime as ort
    so = session_options(1)
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda x: s.run(["landmarks", "presence", "handedness"], {"image": x})


def gate_crops(shape):
    """The front end's whole-frame first crops (upright, then turned); the gate also tries
    the hand mask's box second (device.vision.front_end)."""
    fc = frame_crop(shape)
    for r in (0.0, 90.0, -90.0, 180.0):
        yield Crop(fc.centre, fc.side, math.radians(r))


def _stats(e: list[np.ndarray]) -> dict:
    if not e:
        return {}
    a = np.concatenate(e)
    return {"median_px": round(float(np.median(a)), 2), "p90_px": round(float(
        np.percentile(a, 90)), 2), "p99_px": round(float(np.percentile(a, 99)), 2),
        "images": len(e),
        "images_median_over_10px": int(sum(float(np.median(x)) > 10 for x in e))}


def crop_cpu_ms(run, runs: int, warmup: int = 5) -> float:
    """Median CPU ms of one run of the network ``run`` on a blank 224 crop, over ``runs``
    runs less the first ``warmup``."""
    x = to_rgb_input(np.zeros((224, 224, 3), np.uint8))
    ts = []
    for k in range(runs):
        c0 = time.process_time()
        run(x)
        if k >= warmup:
            ts.append((time.process_time() - c0) * 1e3)
    return round(float(np.median(ts)), 2)


def landmark_error(path: Path, paths: list[Path], ref: list) -> dict:
    """Error against MediaPipe, px of the 224 crop; see the module doc (4)."""
    run = session_fn(path)
    lmk = Landmarker(session=run)
    on_crop, front, pres, found, cpu = [], [], [], 0, []
    for p, r in zip(paths, ref):
        im = cv2.imread(str(p))
        c0 = time.process_time()
        d = lmk.detect(im, gate_crops(im.shape))
        cpu.append((time.process_time() - c0) * 1e3)
        found += d is not None
        if r is None:
            continue
        crop = crop_from_landmarks(r)
        k = 224.0 / crop.side
        one = lmk.run_crop(im, crop)
        on_crop.append(np.hypot(*(one.points[:, :2] - r[:, :2]).T) * k)
        pres.append(one.presence)
        if d is not None:
            front.append(np.hypot(*(d.points[:, :2] - r[:, :2]).T) * k)
    return {"on_mediapipe_crop": {**_stats(on_crop),
                                  "presence_median": round(float(np.median(pres)), 3),
                                  "presence_min": round(float(np.min(pres)), 3)},
            "front_end": {**_stats(front), "hand_found": found, "photos": len(paths),
                          "cpu_ms_per_photo_median": round(float(np.median(cpu)), 1)},
            "mediapipe_found": int(sum(r is not None for r in ref)),
            "cpu_ms_per_crop_1_thread": crop_cpu_ms(run, 25)}


FIXTURE_SEED = 9001


def write_fixture(out: Path) -> dict:
    """The tests' landmark fixture: one synthetic hand (device.synth, seed 9001, a right palm,
    320x240 JPEG) upright and turned 90 degrees, with MediaPipe's own landmarks on each (the
    teacher the ONNX files are checked against in tests/test_landmarks.py). No research image
    goes into git."""
    import mediapipe as mp

    from device.synth.hand_geometry import perturb_pose, sample_hand_geometry
    from device.synth.hands import render_hand_views, sample_rig
    from device.synth.palms import skin_texture
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(FIXTURE_SEED)
    geom = sample_hand_geometry(rng, "right", veins=False)
    tex = np.clip(0.5 + 0.1 * skin_texture(3), 0, 1)
    im = render_hand_views(geom, tex, rng, views=1, rig=sample_rig(rng, 1),
                           pose=perturb_pose(rng, 0.5))[0][0]
    im = cv2.resize(im, (320, 240), interpolation=cv2.INTER_AREA)
    files = {"hand_upright.jpg": im, "hand_turned.jpg": cv2.rotate(im, cv2.ROTATE_90_CLOCKWISE)}
    ref = {"mediapipe": mp.__version__, "model_complexity": 1, "seed": FIXTURE_SEED,
           "coordinates": "pixel-index (x, y), z scaled like x", "images": {}}
    for name, img in files.items():
        cv2.imwrite(str(out / name), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        lm = mediapipe_landmarks([out / name], 1)[0]
        ref["images"][name] = None if lm is None else np.round(lm, 2).tolist()
    (out / "mediapipe.json").write_text(json.dumps(ref, indent=1) + "\n")
    return ref


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=str(MODELS_DIR))
    ap.add_argument("--calib", default=None, help="calibration photos (default: NTUST ntust-hp)")
    ap.add_argument("--eval", nargs="+", default=None,
                    help="evaluation photo folders (default: NTUST ntust-hp and ntust-ip)")
    ap.add_argument("--only", choices=sorted(FILES), nargs="+", default=sorted(FILES))
    ap.add_argument("--no-manifest", action="store_true")
    ap.add_argument("--fixture", default=None, metavar="DIR",
                    help="only write the tests' fixture (tests/fixtures/hand_landmarks)")
    a = ap.parse_args(argv)
    if a.fixture:
        print(json.dumps(write_fixture(Path(a.fixture)))[:300])
        return 0
    from device.models.model import sha256_file
    from tools.manifest import update_entry
    models = Path(a.models)
    ntust = real_dir("ntust")
    calib = list_images(Path(a.calib) if a.calib else ntust / "ntust-hp")
    evals = {Path(d).name: list_images(Path(d)) for d in
             (a.eval or [ntust / "ntust-hp", ntust / "ntust-ip"])}
    tfl, mp_version = tflite_paths()
    report = {}
    for kind in a.only:
        fp32 = models / FILES[kind]
        int8 = models / FILES[kind].replace(".onnx", "_int8.onnx")
        print(f"{kind}: converting {tfl[kind]}", file=sys.stderr, flush=True)
        convert(tfl[kind], fp32)
        cal_ref = mediapipe_landmarks(calib, COMPLEXITY[kind])
        frames = []
        for p, r in zip(calib, cal_ref):
            im = cv2.imread(str(p))
            frames.append(to_rgb_input(frame_crop(im.shape).warp(im)))
            if r is not None:
                frames.append(to_rgb_input(crop_from_landmarks(r).warp(im)))
        print(f"{kind}: int8 on {len(frames)} calibration crops", file=sys.stderr, flush=True)
        quantize(fp32, int8, frames)
        refs = {name: mediapipe_landmarks(ps, COMPLEXITY[kind]) for name, ps in evals.items()}
        provenance = {"source": f"mediapipe=={mp_version} (PyPI wheel), "
                                f"mediapipe/modules/hand_landmark/{tfl[kind].name}",
                      "source_sha256": sha256_file(tfl[kind]), "licence": "Apache-2.0",
                      "converter": "tflite2onnx " + _version("tflite2onnx")
                                   + ", onnx version_converter to opset 13"}
        for path, prec in ((fp32, "fp32"), (int8, "int8")):
            print(f"{kind} {prec}: measuring", file=sys.stderr, flush=True)
            m = {name: landmark_error(path, evals[name], refs[name]) for name in evals}
            report[path.name] = m
            if a.no_manifest:
                continue
            extra = {"provenance": provenance, "input": "RGB crop in [0, 1], 224x224, "
                     "rotated so the hand points up (device.vision.landmarks)",
                     "mediapipe_model_complexity": COMPLEXITY[kind]}
            if prec == "int8":
                extra["quantized_from"] = fp32.name
            update_entry(path.name, metrics={"landmark_error_vs_mediapipe": m},
                         command=COMMAND, manifest_path=models / "manifest.json",
                         data=f"calibration: {len(frames)} crops (MediaPipe's, whole frame) of "
                              f"{_rel(Path(a.calib) if a.calib else ntust / 'ntust-hp')}; "
                              f"evaluation: " + ", ".join(_rel(ntust / n) for n in evals),
                         notes=("int8: QDQ, per-channel int8 weights, uint8 activations, "
                                "MinMax; the heads (Gemm, Sigmoid) in float. "
                                if prec == "int8" else "")
                         + "MediaPipe Hands' hand-landmark network, converted (not trained "
                         "here); error in pixels of the 224 crop against mediapipe's own "
                         "landmarks.", extra=extra)
    print(json.dumps(report, indent=2))
    return 0


def _version(pkg: str) -> str:
    from importlib.metadata import version
    return version(pkg)


def _rel(p: Path) -> str:
    s = str(p)
    return s[s.index("real/"):] if "real/" in s else s


if __name__ == "__main__":
    sys.exit(main())
