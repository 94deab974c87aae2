"""Train, validate and export the palm print generation model (``python -m tools.train
generator``). Needs the identity extractor checkpoint from ``python -m tools.train idnet``."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from tools.manifest import update_entry
from device.synth.creases import crease_map
from tools.train.augment import random_affine
from tools.train.generator import FEATURES, GenerationModel, identity_loss, l1_loss
from tools.train.idnet import PalmIdNet
from tools.train.realdata import split_subjects, tongji
from tools.train.run_idnet import SPLIT_SEED, VAL_FRACTION

GENERATOR_ONNX = "palm_generator.onnx"
ENCODER_ONNX = "palm_style_encoder.onnx"
STYLE_BANK = "palm_style_bank.npy"
LAMBDA_L1, LAMBDA_ID = 10.0, 1.0


def load_idnet(work: Path) -> PalmIdNet:
    ckpt = work / "idnet.pt"
    if not ckpt.exists():
        raise FileNotFoundError(f"{ckpt} missing: run `python -m tools.train idnet` first")
    net = PalmIdNet()
    net.load_state_dict(torch.load(ckpt, map_location="cpu")["state_dict"])
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _pairs(labels: np.ndarray, rng: np.random.Generator, idx: np.ndarray) -> np.ndarray:
    """For each target index, a different image of the same palm (the condition)."""
    out = np.empty_like(idx)
    for k, i in enumerate(idx):
        same = np.flatnonzero(labels == labels[i])
        out[k] = rng.choice(same[same != i])
    return out


def evaluate(model, idnet, images, creases, labels, rng, n: int = 256) -> dict:
    """L1 and identity loss on held-out palms (subject-disjoint from training)."""
    idx = rng.choice(len(images), min(n, len(images)), replace=False)
    cond = _pairs(labels, rng, idx)
    model.eval()
    with torch.no_grad():
        gen = model(creases[idx], images[cond])
        return {"l1": float(l1_loss(gen, images[idx])),
                "identity_loss": float(identity_loss(idnet(images[idx]), idnet(gen)))}


def train(data_train, data_val, idnet, steps: int, batch: int = 16, lr: float = 2e-3,
          seed: int = 0, log=print):
    torch.manual_seed(seed)
    gen_t = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    def tensors(ds):
        x = torch.from_numpy(ds.images).float().div_(255.0)[:, None]
        c = torch.from_numpy(np.stack([crease_map(im) for im in ds.images]))[:, None]
        return x, c
    x_tr, c_tr = tensors(data_train)
    x_va, c_va = tensors(data_val)
    model = GenerationModel()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.1)
    history = []
    t0 = time.time()
    for step in range(steps):
        model.train()
        idx = rng.choice(len(x_tr), batch, replace=False)
        cond = _pairs(data_train.labels, rng, idx)
        both = random_affine(torch.cat([x_tr[idx], c_tr[idx]], 1), gen_t)  # same warp
        target, cand = both[:, :1], both[:, 1:]
        out = model(cand, x_tr[cond])
        with torch.no_grad():
            f_gt = idnet(target)
        l1, lid = l1_loss(out, target), identity_loss(f_gt, idnet(out))
        loss = LAMBDA_L1 * l1 + LAMBDA_ID * lid
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            history.append({"step": step, "l1": l1.item(), "identity_loss": lid.item()})
            log(f"generator step {step}/{steps} l1 {l1.item():.4f} id {lid.item():.4f} "
                f"{time.time() - t0:.0f}s", flush=True)
    val = evaluate(model, idnet, x_va, c_va, data_val.labels, np.random.default_rng(1))
    log(f"generator validation (held-out palms): {val}")
    return model, {"validation": val, "train_history": history}


def export(model: GenerationModel, models: Path) -> None:
    model.eval()
    cand, real = torch.zeros(1, 1, 128, 128), torch.zeros(1, 1, 128, 128)
    torch.onnx.export(model.generator, (cand, torch.ones(1, FEATURES)),
                      str(models / GENERATOR_ONNX), input_names=["candidate", "condition"],
                      output_names=["palm"], opset_version=17, dynamo=False,
                      dynamic_axes={"candidate": {0: "batch"}, "condition": {0: "batch"},
                                    "palm": {0: "batch"}})
    torch.onnx.export(model.encoder, real, str(models / ENCODER_ONNX), input_names=["real"],
                      output_names=["condition"], opset_version=17, dynamo=False,
                      dynamic_axes={"real": {0: "batch"}, "condition": {0: "batch"}})


def style_bank(model: GenerationModel, data) -> np.ndarray:
    """One condition per real training palm: the mean encoder output over its images. Lets
    synthesis run where no real images are (the gate's demo, CI) without shipping any image."""
    model.eval()
    x = torch.from_numpy(data.images).float().div_(255.0)[:, None]
    with torch.no_grad():
        c = torch.cat([model.encoder(x[k:k + 256]) for k in range(0, len(x), 256)]).numpy()
    return np.stack([c[data.labels == s].mean(axis=0) for s in np.unique(data.labels)])


def run(steps: int, seed: int, work: Path, models: Path, command: str, profile: str) -> dict:
    data = tongji()
    tr, va = split_subjects(len(data.subjects), VAL_FRACTION, SPLIT_SEED)
    idnet = load_idnet(work)
    model, report = train(data.subset(tr), data.subset(va), idnet, steps=steps, seed=seed)
    torch.save({"state_dict": model.state_dict(), "report": report}, work / "generator.pt")
    models.mkdir(parents=True, exist_ok=True)
    export(model, models)
    np.save(models / STYLE_BANK, style_bank(model, data.subset(tr)).astype(np.float32))
    if models.resolve() == (Path(__file__).resolve().parents[2] / "models"):
        data_note = (f"../shared/data/real/tongji: {len(tr)} training palms (crease maps of each "
                     f"image as candidate, another image of the same palm as condition); "
                     f"validation on {len(va)} subject-disjoint palms")
        metrics = {**report, "profile": profile, "steps": steps,
                   "losses": f"{LAMBDA_L1} * L1 + {LAMBDA_ID} * (1 - cos) with palm_idnet"}
        update_entry(GENERATOR_ONNX, metrics=metrics, command=command, data=data_note,
                     notes="seed 004 generator f_decoder: candidate (1=crease) and 64-d "
                           "condition -> palm ROI in [0,1]")
        update_entry(STYLE_BANK, metrics={"palms": int(len(tr))}, command=command,
                     data=data_note, notes="(palms, 64) float32: per-palm mean encoder "
                                           "condition of the training palms")
        update_entry(ENCODER_ONNX, metrics={"profile": profile, "steps": steps}, command=command,
                     data=data_note, notes="seed 004 encoder f_encoder: real palm ROI in [0,1] "
                                           "-> 64-d condition")
    return report
