"""``python -m tools.train <what> --profile quick|full``: retrain and export shipped models.

what:
  idnet      the palm identity feature extractor (real Tongji palms) used by seed 004's
             identity loss and by the synthetic-identity check
  generator  the palm print generation model of seed 004 (needs idnet first)
  synth      idnet then generator
  sensor     seed 001's transmission-sensor branch, X-ray and NIR: super-resolution and
             liveness models, fp32 and int8 (tools/train/sensor.py)
  sensor-loso  leave-one-species-out evaluation of the liveness recipe (--sensor xray|nir;
             tools/train/sensor_loso.py): per attack species, a model trained without it,
             its APCER on it (quick: ~15-30 min per sensor on one CPU core)
  liveness   with --retrain-from DIR: fine-tune the shipped liveness model on reviewed
             presentations (claim 9; `palmgate review` writes DIR); SR unchanged
  recognition  learned palm cells on Tongji training palms (the fusion: `fusion`), fp32 and
             int8 (tools/train/recognition.py; quick: ~45 min on 2 CPU cores)
  fusion     the seed-000 multi-view fusion over the shipped learned cells, trained on
             degraded captures (pre-trained on synthetic identities, fine-tuned on Tongji
             training palms), fp32 and int8 (tools/train/recognition_fusion_run.py; quick:
             minutes on a laptop CPU once the cells are cached; --test: the test table, once)
  presence   the sensor stage's presence check ("is there a hand in the sensor frame?"), one
             model per --sensor, fp32 and int8, with its signed threshold and frame-statistic
             limits (tools/train/presence.py; quick: a few minutes on one CPU core)
  handseg    the hand segmentation network of the gate's fast palm-region path for colour
             views, fp32 and int8 (tools/train/handseg.py; quick: ~5 min on one CPU core)
  phantom    the X-ray phantom check (a radiographic hand phantom under the sensor), fp32 and
             int8 with their signed thresholds chosen on --validation SET [--validation SET
             ...] (X-ray tools.synth liveness --presentations --attack-species sets) and
             --live-frames NPZ, at most 1 in --allowed-in of their live frames beyond;
             --hard N adds N hard negatives (tools/train/phantom.py; quick: a few minutes on
             one CPU core)
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from device.synth.bound import NIR_WORLDS, use_nir_world

PROFILES = {
    "idnet": {"quick": {"steps": 120}, "full": {"steps": 1000}},
    "generator": {"quick": {"steps": 80}, "full": {"steps": 1500}},
    "sensor": {"quick": {"steps": 60}, "full": {"steps": 2500}},      # liveness steps
    "liveness": {"quick": {"steps": 40}, "full": {"steps": 200}},     # --retrain-from
}


def _command_line() -> str:
    return "python -m tools.train " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["idnet", "generator", "synth", "sensor", "sensor-loso",
                                    "liveness", "recognition", "handseg", "fusion",
                                    "presence", "phantom"])
    p.add_argument("--profile", choices=["quick", "full", "species", "print", "nirworld",
                                         "placed", "xaug", "xaugquick", "nirprint"],
                   default="quick",
                   help="species: sensor --continue-rounds finetune5|finetune6 (the "
                        "composite-species rounds) and sensor-loso as a continuation; "
                        "print: sensor --continue-rounds finetune8 (the NIR printed-photo "
                        "round); nirworld: sensor --continue-rounds finetune10 (NIR frames "
                        "that show the palm print); placed: sensor --continue-rounds "
                        "finetune14 (X-ray hands that lie as widely as at the gate); xaug: sensor "
                        "--continue-rounds finetune15 (X-ray, resampled copies of every "
                        "capture; xaugquick: the same on small sets); nirprint: sensor "
                        "--continue-rounds finetune16 (NIR, many more printed photos and live "
                        "frames of the palm-print world; finetune16q: its quick round)")
    p.add_argument("--steps", type=int, help="override the profile's step count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--work", default="work",
                   help="checkpoint folder (git-ignored); checkpoints go to WORK/<profile>")
    p.add_argument("--models", default=None,
                   help="where to write ONNX files (default: models/ for --profile full, "
                        "WORK/quick/models for --profile quick, so a quick run never replaces "
                        "the shipped models)")
    p.add_argument("--resume", action="store_true",
                   help="sensor: reuse the SR/liveness checkpoints already in the work folder "
                        "(work/<profile>/*.pt) instead of training them again")
    p.add_argument("--sensor", choices=["xray", "nir"], default=None,
                   help="sensor/liveness: only this sensor kind (default: both / from DIR)")
    p.add_argument("--continue-rounds", nargs="+", default=None, metavar="ROUND",
                   help="sensor: run only these fine-tune rounds of the profile (e.g. "
                        "finetune4) on the liveness file in the models folder, SR unchanged "
                        "(needs --sensor)")
    p.add_argument("--stages", default="data,train,hybrid,eval,export",
                   help="fusion: comma-separated stages (data, train, hybrid, eval, export)")
    p.add_argument("--test", action="store_true",
                   help="fusion: measure the test palms too (once, at the end)")
    p.add_argument("--species", nargs="+", default=None,
                   help="sensor-loso: leave out only these species (default: every one)")
    p.add_argument("--retrain-from", default=None, metavar="DIR",
                   help="liveness: reviewed presentations (liveness layout) to fine-tune on")
    p.add_argument("--models-from", default=None,
                   help="liveness: models to fine-tune (default: the shipped models/)")
    p.add_argument("--validation", action="append", default=None, metavar="SET",
                   help="phantom: an X-ray validation set its thresholds are chosen on "
                        "(repeatable: the bona fide of every set count)")
    p.add_argument("--live-frames", action="append", default=[], metavar="NPZ",
                   help="phantom: rendered live frames (uint8 'frames') counted with the "
                        "validation sets' bona fide")
    p.add_argument("--allowed-in", type=int, default=1000, metavar="N",
                   help="phantom: at most 1 in N validation live frames beyond the threshold")
    p.add_argument("--hard", type=int, default=0, metavar="N",
                   help="phantom: N hard negatives (live hands with >= 3 risk traits, a "
                        "phantom cast on each); 0: the recipe as first shipped")
    p.add_argument("--sign-key", default=None, metavar="PATH",
                   help="Ed25519 private key that re-signs the manifest after each entry "
                        "written (default: $PALMGATE_SIGN_KEY; without one the manifest is left "
                        "unsigned for the release step, docs/model-signing.md)")
    p.add_argument("--nir-world", choices=NIR_WORLDS, default="palm-print",
                   help="NIR sets: the world whose frames show the palm print (the default, "
                        "device.synth.bound.NIR_PALM_PRINT) or the old world without it, "
                        "where the first NIR models (--profile full, the rounds before "
                        "nirworld) were trained")
    a = p.parse_args(argv)
    use_nir_world(a.nir_world)
    if a.sign_key:                      # read by tools/manifest.py at each entry written
        import os
        from tools.sign_manifest import KEY_ENV
        os.environ[KEY_ENV] = a.sign_key

    import torch

    from tools.paths import MODELS_DIR

    if a.threads:
        torch.set_num_threads(a.threads)
    work = Path(a.work) / a.profile  # checkpoints per profile: quick never feeds full
    work.mkdir(parents=True, exist_ok=True)
    if a.models:
        models = Path(a.models)
    else:
        shipped = ("full", "species", "print", "nirworld", "placed", "xaug", "nirprint")
        models = MODELS_DIR if a.profile in shipped else work / "models"
    if a.what in ("sensor", "liveness"):
        return _sensor(a, work, models, torch)
    if a.what == "sensor-loso":
        return _loso(a, work, torch)
    if a.what == "recognition":
        from tools.train.recognition import run as run_recognition
        rep = run_recognition(a.profile, work / "recognition", models, _command_line(),
                              a.seed, a.threads or 1)
        print(json.dumps(rep, indent=1, default=float))
        return 0
    if a.what == "fusion":
        torch.set_num_threads(a.threads or 1)
        from tools.train.recognition_fusion_run import run as run_fusion
        rep = run_fusion(a.profile, work / "fusion", models, _command_line(), a.seed,
                         a.stages.split(","), a.test)
        print(json.dumps({k: v for k, v in rep.items() if k != "eval"}, indent=1,
                         default=float))
        return 0
    if a.what == "presence":
        from tools.train.presence import run as run_presence
        rep = {}
        for s in ([a.sensor] if a.sensor else ["xray", "nir"]):
            rep[s] = run_presence(s, a.profile, work / "presence", models, _command_line(),
                                  a.seed, a.threads or 1, a.steps)
        print(json.dumps(rep, indent=1, default=float))
        return 0
    if a.what == "phantom":
        if a.profile not in ("quick", "full") or not a.validation:
            p.error("phantom takes --profile quick|full and --validation SET")
        from tools.train.phantom import run as run_phantom
        rep = run_phantom(a.profile, work / "phantom", models, _command_line(), a.validation,
                          a.seed, a.threads or 1, hard=a.hard, live_frames=a.live_frames,
                          allowed_in=a.allowed_in)
        print(json.dumps(rep, indent=1, default=float))
        return 0
    if a.what == "handseg":
        from tools.train.handseg import run as run_handseg
        rep = run_handseg(a.profile, work / "handseg", models, _command_line(), a.seed,
                          a.threads or 1, a.steps)
        print(json.dumps(rep, indent=1, default=float))
        return 0
    todo = ["idnet", "generator"] if a.what == "synth" else [a.what]
    for what in todo:
        steps = a.steps or PROFILES[what][a.profile]["steps"]
        if what == "idnet":
            from tools.train.run_idnet import run
        else:
            from tools.train.run_generator import run
        report = run(steps=steps, seed=a.seed, work=work, models=models,
                     command=_command_line(), profile=a.profile)
        print(json.dumps({what: report}, indent=2))
    return 0


def _sensor(a, work, models, torch) -> int:
    from tools.train import sensor

    torch.set_num_threads(a.threads or 1)   # one thread is fastest on a shared 2-core machine
    steps = a.steps or PROFILES[a.what].get(a.profile, PROFILES[a.what]["full"])["steps"]
    if a.what == "sensor" and a.continue_rounds:
        if not a.sensor:
            raise SystemExit("sensor --continue-rounds needs --sensor xray|nir")
        report = sensor.continue_rounds(a.sensor, a.continue_rounds, work, models,
                                        _command_line(), a.profile, threads=a.threads or 1,
                                        seed=a.seed, resume=a.resume)
    elif a.what == "sensor":
        report = sensor.run(steps=steps, seed=a.seed, work=work, models=models,
                            command=_command_line(), profile=a.profile,
                            sensors=[a.sensor] if a.sensor else sensor.SENSORS,
                            threads=a.threads or 1, resume=a.resume)
    else:
        if not a.retrain_from:
            raise SystemExit("liveness: --retrain-from DIR is required")
        from tools.paths import MODELS_DIR
        dst = Path(a.models) if a.models else work / "retrain" / "models"
        report = sensor.retrain(Path(a.retrain_from), a.sensor, steps, a.seed, work,
                                Path(a.models_from) if a.models_from else MODELS_DIR, dst,
                                _command_line(), a.profile, threads=a.threads or 1)
    print(json.dumps(report, indent=1, default=float))
    return 0


def _loso(a, work, torch) -> int:
    from tools.paths import MODELS_DIR
    from tools.train.sensor_loso import run_loso

    if not a.sensor:
        raise SystemExit("sensor-loso needs --sensor xray|nir")
    torch.set_num_threads(a.threads or 1)
    report = run_loso(a.sensor, a.profile, work, Path(a.models) if a.models else MODELS_DIR,
                      threads=a.threads or 1, species=a.species, seed=a.seed)
    print(json.dumps(report["summary"], indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
