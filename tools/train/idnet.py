"""The palm identity feature extractor of seed 004 ("target feature extraction model", [0309]):
pre-trained on real palms, frozen, used for the generator's identity loss 1 - cos and to check that
synthetic identities are preserved.

Architecture (after ../shared/FINDINGS.md: fixed Gabor orientation maps help a lot on few real
identities): the 128x128 ROI is average-pooled to 64x64, filtered by a fixed bank of 6 real Gabor
filters whose soft competitive weights (softmax of the negated responses) join the image as 7
input channels; five conv-BN-PReLU blocks with three stride-2 steps reach 8x8x128; dropout;
a fully connected layer to a 128-d embedding, L2-normalised. Loss: CosFace (additive cosine
margin) with a margin warm-up, scale 32.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from device.eval.metrics import d_prime, eer, tar_at_far
from device.vision.gabor import gabor_bank
from tools.train.augment import random_affine, random_photometric


class GaborOrientation(nn.Module):
    """Fixed Gabor bank -> soft competitive orientation weights; output: image + 6 maps."""

    def __init__(self, sigma: float = 2.75, size: int = 23, temperature: float = 0.05):
        super().__init__()
        self.register_buffer("weight", torch.from_numpy(gabor_bank(6, sigma, size))[:, None])
        self.pad = size // 2
        self.temperature = temperature

    def forward(self, x):
        r = F.conv2d(F.pad(x, [self.pad] * 4, mode="reflect"), self.weight)
        r = r / (r.abs().amax(dim=(1, 2, 3), keepdim=True) + 1e-6)
        return torch.cat([x, torch.softmax(-r / self.temperature, dim=1)], dim=1)


def _block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.PReLU(cout))


class PalmIdNet(nn.Module):
    """(B,1,128,128) in [0,1] -> (B,dim) unit embeddings."""

    def __init__(self, dim: int = 128, width: int = 32, dropout: float = 0.3):
        super().__init__()
        w = width
        self.front = GaborOrientation()
        self.body = nn.Sequential(_block(7, w, 1), _block(w, 2 * w, 2), _block(2 * w, 2 * w, 1),
                                  _block(2 * w, 4 * w, 2), _block(4 * w, 4 * w, 1),
                                  _block(4 * w, 4 * w, 2))
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * w * 8 * 8, dim)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x):
        x = F.avg_pool2d(x, 2)
        x = (x - x.mean(dim=(2, 3), keepdim=True)) / (x.std(dim=(2, 3), keepdim=True) + 1e-4)
        x = self.body(self.front(x))
        x = self.bn(self.fc(self.drop(torch.flatten(x, 1))))
        return F.normalize(x, dim=1)


class CosFace(nn.Module):
    def __init__(self, dim: int, n_classes: int, scale: float = 32.0):
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_classes, dim) * 0.01)
        self.scale = scale

    def forward(self, emb, labels, margin: float):
        cos = emb @ F.normalize(self.w, dim=1).t()
        cos = cos - margin * F.one_hot(labels, cos.shape[1]).to(cos)
        return F.cross_entropy(self.scale * cos, labels)


def embed(model: nn.Module, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Embeddings of uint8 or [0,1] float (N,128,128) images, eval mode, no grad."""
    model.eval()
    out = []
    with torch.no_grad():
        for k in range(0, len(images), batch):
            x = torch.from_numpy(np.asarray(images[k:k + batch], np.float32))
            if images.dtype == np.uint8:
                x = x / 255.0
            out.append(model(x[:, None]).numpy())
    return np.concatenate(out)


def cross_session_scores(emb: np.ndarray, labels: np.ndarray, sessions: np.ndarray):
    """Cosine scores of every session-1 image against every session-2 image."""
    a, b = sessions == 1, sessions == 2
    s = emb[a] @ emb[b].T
    same = labels[a][:, None] == labels[b][None, :]
    return s[same], s[~same]


def verification_report(genuine, impostor) -> dict:
    return {"eer": eer(genuine, impostor), "tar": {f: tar_at_far(genuine, impostor, float(f))
                                                   for f in ("1e-3", "1e-4")},
            "d_prime": d_prime(genuine, impostor), "n_genuine": int(len(genuine)),
            "n_impostor": int(len(impostor))}


def train_idnet(train_set, val_set, steps: int, batch_classes: int = 32, per_class: int = 4,
                lr: float = 3e-3, margin: float = 0.3, seed: int = 0, log=print):
    """Train on ``train_set`` (PalmSet); report cross-session verification on ``val_set``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    classes = np.unique(train_set.labels)
    remap = {c: k for k, c in enumerate(classes)}
    y_all = np.array([remap[c] for c in train_set.labels])
    index = [np.flatnonzero(y_all == k) for k in range(len(classes))]
    images = torch.from_numpy(train_set.images).float().div_(255.0)[:, None]

    model = PalmIdNet()
    head = CosFace(model.fc.out_features, len(classes))
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=lr,
                            weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    t0 = time.time()
    for step in range(steps):
        model.train()
        cls = rng.choice(len(classes), batch_classes, replace=False)
        idx = np.concatenate([rng.choice(index[c], per_class, replace=False) for c in cls])
        x = random_photometric(random_affine(images[idx], gen), gen)
        y = torch.from_numpy(y_all[idx])
        m = margin * min(1.0, step / max(1, 0.3 * steps))  # margin warm-up
        loss = head(model(x), y, m)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"idnet step {step}/{steps} loss {loss.item():.3f} margin {m:.2f} "
                f"{time.time() - t0:.0f}s")
    emb = embed(model, val_set.images)
    g, i = cross_session_scores(emb, val_set.labels, val_set.sessions)
    report = verification_report(g, i)
    log(f"idnet validation (subject-disjoint, cross-session): {report}")
    return model, report


def export_idnet_onnx(model: nn.Module, path) -> None:
    model.eval()
    x = torch.zeros(1, 1, 128, 128)
    torch.onnx.export(model, x, str(path), input_names=["roi"], output_names=["embedding"],
                      dynamic_axes={"roi": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=17, dynamo=False)
