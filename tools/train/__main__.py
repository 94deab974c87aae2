"""``python -m tools.train <what> --profile quick|full``: retrain and export shipped models.

what:
  idnet      the palm identity feature extractor (real Tongji palms) used by seed 004's
             identity loss and by the synthetic-identity check
  generator  the palm print generation model of seed 004 (needs idnet first)
  synth      idnet then generator
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

PROFILES = {
    "idnet": {"quick": {"steps": 120}, "full": {"steps": 1000}},
    "generator": {"quick": {"steps": 80}, "full": {"steps": 1500}},
}


def _command_line() -> str:
    return "python -m tools.train " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["idnet", "generator", "synth"])
    p.add_argument("--profile", choices=["quick", "full"], default="quick")
    p.add_argument("--steps", type=int, help="override the profile's step count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument("--work", default="work",
                   help="checkpoint folder (git-ignored); checkpoints go to WORK/<profile>")
    p.add_argument("--models", default=None,
                   help="where to write ONNX files (default: models/ for --profile full, "
                        "WORK/quick/models for --profile quick, so a quick run never replaces "
                        "the shipped models)")
    a = p.parse_args(argv)

    import torch

    from tools.paths import MODELS_DIR

    if a.threads:
        torch.set_num_threads(a.threads)
    work = Path(a.work) / a.profile  # checkpoints per profile: quick never feeds full
    work.mkdir(parents=True, exist_ok=True)
    if a.models:
        models = Path(a.models)
    else:
        models = MODELS_DIR if a.profile == "full" else work / "models"
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


if __name__ == "__main__":
    raise SystemExit(main())
