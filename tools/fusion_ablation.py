"""Ablations of the fusion on the gate's hybrid path (issue 20; docs/results.md, "Ablations on the
hybrid path"): train a fusion variant with the shipped recipe, export it into a copy of the
models folder, score that copy with ``python -m tools.fusion_table``.

    python -m tools.fusion_ablation train VARIANT --seed S --work W --out MODELS_COPY
    python -m tools.fusion_ablation score MODELS_COPY DATA --out OUT [--rows "fusion attention"]

``train``: the full profile of ``python -m tools.train fusion`` for one entry of
``tools.train.recognition_fusion_run.VARIANTS`` (three | content | three_real_only): pre-training
on the synthetic identities (where the variant has it, 150 steps, seed S), fine-tuning on the 240
real training palms (250 steps, seed S+1), then the hybrid stage (750 steps, lr 1e-3, loss on the
hybrid feature, learned importance frozen, seed S+2) -- for "three" and S = 0 the recipe and
seeds of the shipped fusion's stages. Cells are read from the caches of the full profile
(``--cells``/``--synth``/``--classical``, symlinked into W; nothing is recomputed). Then fp32 +
static int8 export (the shipped exporter and calibration) into MODELS_COPY, a copy of
``models/`` with the two fusion files replaced.

``score``: re-enter the two fusion files' sha256 in the copy's manifest (marked "ABLATION"),
sign it with a throwaway key trusted by this process only (nothing on disk trusts it), point
``PALMGATE_MODELS`` at it and run the fusion table (3 views 2 degraded seeds 0-4 pooled, clean,
1 view; int8) -- the gate's own code path.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

FULL = Path("/tmp/ft/full")
CACHES = {"tongji_cells.npy": FULL / "fusion_cells.npy",
          "tongji_meta.npz": FULL / "fusion_cells_meta.npz",
          "synth_cells.npy": FULL / "synth_cells.npy",
          "synth_meta.npz": FULL / "synth_meta.npz",
          "tongji_classical.npy": Path("/tmp/fuse2/work/tongji_classical.npy")}


def train(variant: str, seed: int, work: Path, caches=CACHES, steps: dict | None = None,
          log=print):
    """The trained hybrid-stage Fusion of ``variant`` (checkpoints in ``work``; an existing
    checkpoint is reused)."""
    import torch

    import tools.train.recognition_fusion_run as R
    from tools.train.recognition_fusion import Fusion
    from tools.train.recognition_fusion_data import load_cells
    from tools.train.recognition_fusion_train import CellSet, train_fusion
    work.mkdir(parents=True, exist_ok=True)
    for name, src in caches.items():
        if not (work / name).exists():
            (work / name).symlink_to(src)
    prof = {**R.PROFILES["full"], **(steps or {})}
    mode = R.VARIANTS[variant][0]
    if not (work / f"fusion_{variant}.pt").exists():
        R.stage_train(prof, work, variants=[variant], seed=seed, log=log)
    hp = work / f"fusion_{variant}_hybrid.pt"
    if not hp.exists():
        real = R.cellset(work, "tongji")
        classical = CellSet(*load_cells(work, "tongji", "classical"))
        tr, _, _ = R.palm_split()
        t = time.time()
        net = train_fusion(real, tr, mode=mode, steps=prof["hybrid_steps"],
                           batch_palms=prof["palms"], seed=seed + 2, lr=1e-3,
                           init=torch.load(work / f"fusion_{variant}.pt"), classical=classical,
                           train_importance=prof["hybrid_importance"], log=log)
        torch.save(net.state_dict(), hp)
        log(f"hybrid {variant} seed {seed}: {time.time() - t:.0f}s")
    net = Fusion(mode=mode)
    net.load_state_dict(torch.load(hp))
    return net.eval()


def export(net, work: Path, out: Path, models: Path) -> dict:
    """A copy of ``models`` in ``out`` with the fusion files exported from ``net``; parity."""
    import tools.train.recognition_fusion_run as R
    from tools.train.recognition_fusion_export import (calibration_frames, export_fp32,
                                                       export_int8, parity)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(models, out)
    fp32, int8 = out / "recognition_fusion.onnx", out / "recognition_fusion_int8.onnx"
    export_fp32(net, fp32)
    real = R.cellset(work, "tongji")
    tr, _, _ = R.palm_split()
    export_int8(fp32, int8, calibration_frames(real, tr))
    return {"fp32": parity(net, fp32), "int8": parity(net, int8)}


def sign_copy(models_dir: Path) -> str:
    """Re-enter the fusion files of the copy ``models_dir`` in its manifest (notes marked
    ABLATION, metrics dropped), sign it with a fresh throwaway key and trust that key in this
    process only; the key id."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from device.models.trust import trust_in_this_process
    from tools.manifest import update_entry
    from tools.sign_manifest import write_signature
    man = json.loads((models_dir / "manifest.json").read_text())["models"]
    for f in ("recognition_fusion.onnx", "recognition_fusion_int8.onnx"):
        o = man[f]
        update_entry(f, metrics={}, command=o["command"], data=o["data"],
                     notes="ABLATION (not shipped): " + o.get("notes", ""),
                     manifest_path=models_dir / "manifest.json")
    key = Ed25519PrivateKey.generate()
    write_signature(models_dir, [key])
    return trust_in_this_process(key.public_key())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.fusion_ablation", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("variant", choices=["three", "content", "three_real_only"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--work", required=True)
    t.add_argument("--out", required=True, help="models copy to write")
    t.add_argument("--models", default=None, help="models folder to copy (default models/)")
    s = sub.add_parser("score")
    s.add_argument("models_dir")
    s.add_argument("data")
    s.add_argument("--out", required=True)
    s.add_argument("--rows", default="fusion attention")
    a = ap.parse_args(argv)
    if a.cmd == "train":
        import torch
        torch.set_num_threads(1)
        from tools.paths import MODELS_DIR
        net = train(a.variant, a.seed, Path(a.work))
        par = export(net, Path(a.work), Path(a.out), Path(a.models or MODELS_DIR))
        print(f"parity {par}")
        return 0
    d = Path(a.models_dir)
    os.environ["PALMGATE_MODELS"] = str(d)
    from device.models.model import DEFAULT_MODELS_DIR
    if Path(DEFAULT_MODELS_DIR).resolve() != d.resolve():   # imported before the variable was set
        raise SystemExit(f"models folder is {DEFAULT_MODELS_DIR}, not {d}: run as a fresh process")
    sign_copy(d)
    from tools.fusion_table import main as table
    return table([a.data, "--rows", a.rows, "--out", a.out])


if __name__ == "__main__":
    sys.exit(main())
