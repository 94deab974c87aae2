"""``python -m tools.train recognition --profile quick|full``: the learned palm cells
(pre-trained on synthetic identities of the shipped generation model, seed 004, then trained on
real palms), fp32 + static int8 ONNX export with manifest entries. The seed-000 fusion over
these cells is trained afterwards by ``python -m tools.train fusion`` (its data stage embeds
the cells with the installed network).

Data: the Tongji ROIs (../shared/data/real/tongji), subject-disjoint split
``split_subjects(300, 0.2, 0)`` of tools/train/realdata.py: the 240 training palms train every
stage; the 60 validation palms choose everything (no test set is used or claimed).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

# the data, log and work folder every stage shares (load_data stays importable from here)
from tools.train.recognition_data import WORK, load_data, log  # noqa: F401

PROFILES = {
    # cells: steps, palms per batch
    "quick": {"cell_steps": 600, "palms": 64, "cell_budget_s": 40 * 60,
              "pretrain_steps": 200, "pretrain_palms": 32, "synth_subjects": 1000},
    "full": {"cell_steps": 1600, "palms": 64, "cell_budget_s": None,
             "pretrain_steps": 1000, "pretrain_palms": 64, "synth_subjects": 4000},
}


def make_synth(out: Path, subjects: int, seed: int = 7) -> None:
    """Synthetic identities from the shipped generation model (seed 004, device.synth)."""
    import subprocess
    import sys
    subprocess.run([sys.executable, "-m", "tools.synth", "palms", "--out", str(out),
                    "--subjects", str(subjects), "--sessions", "2", "--samples", "3",
                    "--seed", str(seed), "--threads", "1"], check=True)


def stage_pretrain(profile: dict, work: Path, synth_dir, seed: int = 0) -> None:
    """Seed 004: pre-train the cell net on synthetic identities (device.synth palms)."""
    import torch

    from device.recognition.learned import load_bank
    from tools.train.realdata import load_layout
    from tools.train.recognition_cells import inputs_u8, train_cells
    ps = load_layout(synth_dir)
    bank, beta = load_bank()
    x = inputs_u8(ps.images, bank, beta, log)
    log(f"pretrain: {len(ps.subjects)} synthetic identities, {len(x)} images")
    net = train_cells(x, ps.labels, ps.sessions, steps=profile["pretrain_steps"],
                      palms=profile.get("pretrain_palms", profile["palms"]), seed=seed, log=log)
    torch.save(net.state_dict(), work / "cells_synth.pt")


def stage_cells(profile: dict, work: Path = WORK, seed: int = 0, init=None,
                tag: str = "cells", stop_at=None) -> dict:
    import torch

    from tools.train.recognition_cells import cross_session_eer, embed, train_cells
    x, lab, ses, tr, va = load_data(work)
    net = train_cells(x[tr], lab[tr], ses[tr], steps=profile["cell_steps"],
                      palms=profile["palms"], seed=seed, init=init,
                      time_budget_s=None if stop_at else profile["cell_budget_s"],
                      stop_at=stop_at, log=log)
    torch.save(net.state_dict(), work / f"{tag}.pt")
    cv = embed(net, x[va])
    np.save(work / f"{tag}_val_cells.npy", cv)
    m = cross_session_eer(cv, lab[va], ses[va])
    log(f"{tag}: validation 1 view {m}")
    (work / f"{tag}_metrics.json").write_text(json.dumps(m))
    return m


def run(profile: str, work: Path, models: Path | None, command: str, seed: int = 0,
        threads: int = 1, stages=("pretrain", "cells", "export")) -> dict:
    """Train / export the stages; ``models`` None: export and measure under ``work`` only."""
    import torch
    torch.set_num_threads(threads)
    prof = PROFILES[profile]
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    out = {}
    init = None
    if "pretrain" in stages:
        synth = work / "synth"
        if not synth.exists():
            make_synth(synth, prof["synth_subjects"])
        stage_pretrain(prof, work, synth, seed)
        init = torch.load(work / "cells_synth.pt")
    if "cells" in stages:
        out["cells"] = stage_cells(prof, work, seed, init=init)
    if "export" in stages:
        from tools.train.recognition_export import install, stage_export
        summary = stage_export(work, profile=profile, log=log)
        out["export"] = {k: summary[k] for k in ("validation", "latency_ms", "bytes")}
        if models is not None:
            install(work, summary, profile, log=log, models_dir=models, command=command)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.train.recognition")
    ap.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    ap.add_argument("--stages", default="pretrain,cells,export",
                    help="comma-separated: pretrain (synthetic identities), cells, export "
                         "(the fusion: python -m tools.train fusion)")
    ap.add_argument("--work", default=str(WORK))
    ap.add_argument("--models", default=None,
                    help="install the exported files + manifest entries here")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    cmd = f"python -m tools.train recognition --profile {a.profile}"
    run(a.profile, Path(a.work), Path(a.models) if a.models else None, cmd, a.seed,
        a.threads, a.stages.split(","))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
