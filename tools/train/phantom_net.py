"""A small CNN telling a radiographic hand phantom from a live hand in the X-ray frame (a
feasibility measurement, issue 21; docs/results.md "A learned X-ray phantom detector").
Nothing here is shipped: the exported ONNX file goes to a scratch folder, never to models/.

Input: the gate's own SR output (256x256, [0, 1]) of the capture -- what the liveness model
reads, so a gate would pay no second SR -- or the 128x128 capture itself (``--input capture``).
Layout (:class:`PhantomNet`): a 4x4 stride-2 stem, then 3x3 conv-BN-ReLU stages (strides 2,
2, 1, 2), global average + max pooling, a linear layer to one logit (p(phantom) = sigmoid).
Training: Adam, binary cross-entropy, random crops (integer shifts: no resampling of the
pixel grid) and left-right flips; one thread.

    python -m tools.train.phantom_net sr --frames /tmp/phnet/train_46013.npz \
        --precision int8 --out /tmp/phnet/train_46013_sr_int8.npy
    python -m tools.train.phantom_net train --train /tmp/phnet/train_46013.npz \
        --sr /tmp/phnet/train_46013_sr_int8.npy --monitor ... --out /tmp/phnet/run1
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

PLAN = ((16, 2), (24, 2), (32, 1), (48, 2))
"""(channels, stride) of the 3x3 stages after the stem."""


class PhantomNet(nn.Module):
    """Stem (4x4, stride 2, ``stem`` channels) + :data:`PLAN` stages + avg/max pool + linear."""

    def __init__(self, stem: int = 12, plan=PLAN):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, stem, 4, stride=2, padding=1),
                                   nn.BatchNorm2d(stem), nn.ReLU()]
        cin = stem
        for c, s in plan:
            layers += [nn.Conv2d(cin, c, 3, stride=s, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * cin, 1)

    def forward(self, x):
        f = self.features(x)
        g = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)
        return self.head(g)[:, 0]


class Exported(nn.Module):
    """What the ONNX file holds: ``image`` (N, 1, H, W) -> ``p_phantom`` (N,)."""

    def __init__(self, net: PhantomNet):
        super().__init__()
        self.net = net

    def forward(self, image):
        return torch.sigmoid(self.net(image))


def crop_flip(batch: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random ``size`` x ``size`` crops (integer offsets) of (N, H, W) images, each flipped
    left-right with probability 1/2 -- no resampling."""
    n, h, w = batch.shape
    out = np.empty((n, size, size), batch.dtype)
    ys = rng.integers(0, h - size + 1, n)
    xs = rng.integers(0, w - size + 1, n)
    flip = rng.random(n) < 0.5
    for k in range(n):
        c = batch[k, ys[k]:ys[k] + size, xs[k]:xs[k] + size]
        out[k] = c[:, ::-1] if flip[k] else c
    return out


def sr_images(frames, precision: str, threads: int = 1, models_dir=None,
              batch: int = 16, model=None) -> np.ndarray:
    """The gate's SR output (float32, N x 256 x 256) of uint8 captures, as the sensor stage
    computes it (:meth:`device.models.sensor_branch.SensorBranch.super_resolve` of
    :func:`to_capture`, in batches of its default 16), through the signed SR file alone: not a
    whole SensorBranch, which also loads the phantom files this tool replaces. ``model``: the
    SR :class:`device.models.model.Model` already loaded (else it is loaded here)."""
    from device.models.model import DEFAULT_MODELS_DIR, Model
    from device.models.sensor_branch import model_names, to_capture
    sr = model or Model(model_names("xray", precision)[0], models_dir or DEFAULT_MODELS_DIR,
                        threads)
    out = np.zeros((len(frames), 256, 256), np.float32)
    for i in range(0, len(frames), batch):
        caps = np.stack([to_capture(f) for f in frames[i:i + batch]])
        out[i:i + batch] = sr(capture=caps[:, None])["sr"][:, 0]
    return out


def super_resolve(frames: np.ndarray, precision: str, threads: int = 1,
                  models_dir=None) -> np.ndarray:
    """:func:`sr_images` as float16 (the training frames)."""
    return sr_images(frames, precision, threads, models_dir).astype(np.float16)


def load_inputs(frames_npz: str, sr_npy: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images float16 N x H x W, labels, class names) of a rendered set: its SR output when
    ``sr_npy`` is given, else the captures / 255."""
    d = np.load(frames_npz)
    x = np.load(sr_npy, mmap_mode="r") if sr_npy else (d["frames"] / 255.0).astype(np.float16)
    return x, d["label"].astype(np.float32), d["cls"]


def predict(net: nn.Module, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """p(phantom) of whole images (N, H, W)."""
    net.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.asarray(x[i:i + batch], np.float32)[:, None])
            out.append(torch.sigmoid(net(xb)).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def train(x, y, epochs: int, crop: int, lr: float, seed: int, batch: int = 32,
          log=print) -> PhantomNet:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = PhantomNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * (len(x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.15)
    lossf = nn.BCEWithLogitsLoss()
    t, step = time.time(), 0
    for ep in range(epochs):
        net.train()
        order = rng.permutation(len(x))
        tot = 0.0
        for i in range(0, len(order) - batch + 1, batch):
            idx = np.sort(order[i:i + batch])
            xb = crop_flip(np.asarray(x[idx], np.float32), crop, rng)
            xb = torch.from_numpy(np.ascontiguousarray(xb)[:, None])
            loss = lossf(net(xb), torch.from_numpy(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(idx)
            step += 1
        log(f"epoch {ep + 1}/{epochs} loss {tot / len(x):.4f} {time.time() - t:.0f} s")
    return net


def export(net: PhantomNet, path: str, size: int) -> None:
    net.eval()
    torch.onnx.export(Exported(net), torch.zeros(1, 1, size, size), path,
                      input_names=["image"], output_names=["p_phantom"],
                      dynamic_axes={"image": {0: "n"}, "p_phantom": {0: "n"}}, opset_version=17,
                      dynamo=False)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sr", help="the gate's SR output of a rendered set")
    s.add_argument("--frames", required=True)
    s.add_argument("--precision", default="int8", choices=("int8", "fp32"))
    s.add_argument("--out", required=True)
    t = sub.add_parser("train")
    t.add_argument("--train", required=True)
    t.add_argument("--sr", help="SR output of --train (else the captures)")
    t.add_argument("--monitor", help="a second rendered set, scored after training")
    t.add_argument("--monitor-sr")
    t.add_argument("--epochs", type=int, default=16)
    t.add_argument("--crop", type=int, default=224)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, help="a folder: model.pt, phantom.onnx, log.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    if a.cmd == "sr":
        d = np.load(a.frames)
        t0 = time.time()
        np.save(a.out, super_resolve(d["frames"], a.precision))
        print(f"wrote {a.out} in {time.time() - t0:.0f} s")
        return
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y, _ = load_inputs(a.train, a.sr)
    t0 = time.time()
    net = train(x, y, a.epochs, a.crop, a.lr, a.seed)
    info = {"args": vars(a), "train_s": round(time.time() - t0, 1),
            "params": int(sum(p.numel() for p in net.parameters()))}
    torch.save(net.state_dict(), out / "model.pt")
    export(net, str(out / "phantom.onnx"), x.shape[-1])
    if a.monitor:
        xm, ym, cm = load_inputs(a.monitor, a.monitor_sr)
        p = predict(net, xm)
        info["monitor"] = {c: {"n": int(np.sum(cm == c)),
                               "median": float(np.median(p[cm == c])),
                               "q": np.round(np.quantile(p[cm == c], [0, .01, .5, .99, 1]),
                                             4).tolist()}
                           for c in dict.fromkeys(cm.tolist())}
    (out / "log.json").write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
