"""Hand segmentation network for colour camera views: the gate's fast palm-region path.

The classical visible-light segmentation (device.vision.segmentation: skin colour + GrabCut) costs
about 110 ms of CPU per 640x480 view, most of it GrabCut, and cannot be made cheaper without
losing hands (measured: smaller working sizes or fewer iterations raised failure-to-acquire on
synthetic gate hands from 17 % to 22-50 %). This module trains a small encoder-decoder that
maps a colour view, resized so its longest side is 320 px, to hand/background logits at half
that resolution; the runtime (device.vision.segmentation.NetSegmenter) upsamples them to the
frame and hands the mask to the same finger-valley step as before, keeping the classical
hypotheses as the fallback.

Training data: synthetic hands (device.synth.hands, the shipped palm generation model for the
palm print) rendered by the gate's camera model with their exact coverage as ground truth, on
synthetic clutter, on OpenCV's chessboard photos (real camera images, tinted), and on plain
backgrounds; colour, exposure, blur and noise augmentation. No real hand image is used for
training; the real NTUST phone photos and PolyU NIR frames are only evaluated on.

``python -m tools.train handseg --profile quick|full``: renders the data, trains, exports
models/hand_seg.onnx and hand_seg_int8.onnx (static QDQ int8) and writes their manifest entries.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from device.models.ort_session import session_options

# the input geometry is the runtime's: longest side NET_SIDE, padded to a multiple of NET_PAD,
# logits at 1/NET_STRIDE of the input
from device.vision.segmentation import NET_STRIDE as OUT_STRIDE
from device.vision.segmentation import net_input_size

WIDTHS = (12, 24, 40)

PROFILES = {
    "quick": {"images": 600, "steps": 300, "batch": 8, "val_images": 120},
    "full": {"images": 3600, "steps": 3000, "batch": 12, "val_images": 300},
}
TRAIN_SEED, VAL_SEED = 4100, 4200
"""Seeds of the rendered training and validation sets (neither is any evaluation's seed)."""


# --------------------------------------------------------------------------------------------
# data


def _calib_backgrounds(root: Path | None) -> list[np.ndarray]:
    """OpenCV's chessboard sample photos (real camera images) as extra backgrounds."""
    if root is None or not Path(root).is_dir():
        return []
    out = []
    for p in sorted(Path(root).glob("*.jpg")):
        im = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        if im is not None:
            out.append(im)
    return out


def _background(rng: np.random.Generator, size, calib: list[np.ndarray]) -> np.ndarray:
    from device.synth.hands import _background as clutter
    h, w = size
    u = rng.uniform()
    if u < 0.7 or not calib:
        return clutter(rng, size)
    if u < 0.88:                                   # a real photo, tinted, flipped, zoomed
        g = calib[int(rng.integers(len(calib)))]
        if rng.uniform() < 0.5:
            g = g[:, ::-1]
        z = rng.uniform(1.0, 1.6)
        g = cv2.resize(g, None, fx=z, fy=z, interpolation=cv2.INTER_LINEAR)
        y0 = int(rng.integers(0, g.shape[0] - min(g.shape[0], h) + 1))
        x0 = int(rng.integers(0, g.shape[1] - min(g.shape[1], w) + 1))
        g = cv2.resize(g[y0:y0 + h, x0:x0 + w], (w, h))
        tint = rng.uniform(0.5, 1.3, 3)
        return np.clip(g[..., None].astype(np.float32) * tint, 0, 255).astype(np.uint8)
    # plain or gradient, sometimes skin-like (a face, a sleeve, a wooden door)
    c0, c1 = rng.uniform(20, 235, (2, 3))
    if rng.uniform() < 0.4:
        c0 = np.array([rng.uniform(60, 200), rng.uniform(90, 220), rng.uniform(140, 250)])
    ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    bg = c0 * (1 - ramp) + c1 * ramp
    return np.broadcast_to(bg, (h, w, 3)).astype(np.uint8).copy()


def render_set(n: int, seed: int, calib_dir=None, size=(480, 640), threads: int = 1,
               progress=None):
    """``n`` colour views of synthetic hands at the network's input size and their coverage
    masks at the logits' size: (uint8 (n, H, W, 3), float32 (n, H/2, W/2))."""
    from device.synth.hand_geometry import perturb_pose, sample_hand_geometry
    from device.synth.hands import render_hand_views, sample_rig
    from device.synth.palms import PalmSynthesizer, new_identity

    synth = PalmSynthesizer(threads=threads)
    calib = _calib_backgrounds(calib_dir)
    _, _, H, W = net_input_size(*size)
    X = np.zeros((n, H, W, 3), np.uint8)
    Y = np.zeros((n, H // OUT_STRIDE, W // OUT_STRIDE), np.float32)
    k = 0
    while k < n:
        rng = np.random.default_rng([seed, 71, k])
        hand = "right" if rng.uniform() < 0.5 else "left"
        geom = sample_hand_geometry(rng, hand, veins=False)
        tex = synth.palms(new_identity(rng, hand, synth.config), 1, rng)[0]
        pose = perturb_pose(rng, float(rng.uniform(0.5, 1.6)))
        views = int(min(3, n - k))
        mode = "motion" if rng.uniform() < 0.15 else "multi_camera"
        rig = sample_rig(rng, views if mode == "multi_camera" else 1, size,
                         spread_deg=float(rng.uniform(10, 35)))
        alphas: list = []
        shots = render_hand_views(geom, tex, rng, views=views, mode=mode, size=size, rig=rig,
                                  pose=pose, background=_background(rng, size, calib),
                                  alpha_out=alphas)
        for (img, _), a in zip(shots, alphas):
            X[k] = _fit(img, H, W)
            Y[k] = _fit(a, H // OUT_STRIDE, W // OUT_STRIDE)
            k += 1
        if progress:
            progress(k, n)
    return X, Y


def _fit(im: np.ndarray, H: int, W: int) -> np.ndarray:
    """Resize ``im`` to fit H x W keeping the aspect ratio (area interpolation), pad at the
    bottom/right with zeros."""
    h, w = im.shape[:2]
    s = min(H / h, W / w)
    nh, nw = min(H, round(h * s)), min(W, round(w * s))
    r = cv2.resize(im, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((H, W) + im.shape[2:], im.dtype)
    out[:nh, :nw] = r
    return out


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator):
    """Colour and geometry augmentation of one (H, W, 3) uint8 view and its (h, w) mask."""
    if rng.uniform() < 0.5:
        x, y = x[:, ::-1], y[:, ::-1]
    hsv = cv2.cvtColor(np.ascontiguousarray(x), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8)) % 180
    hsv[..., 1] *= rng.uniform(0.6, 1.35)
    x = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)
    f = x.astype(np.float32) / 255.0
    f = f ** rng.uniform(0.7, 1.4)
    f = f * rng.uniform(0.7, 1.3) + rng.uniform(-0.08, 0.08)
    f = f * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    if rng.uniform() < 0.3:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.5, 1.5))
    f = f + rng.normal(0, rng.uniform(0, 0.03), f.shape).astype(np.float32)
    x = np.clip(f * 255, 0, 255).astype(np.uint8)
    if rng.uniform() < 0.5:                       # zoom / shift / rotate both together
        H, W = x.shape[:2]
        a = cv2.getRotationMatrix2D((W / 2 + rng.uniform(-20, 20), H / 2 + rng.uniform(-15, 15)),
                                    rng.uniform(-20, 20), rng.uniform(0.8, 1.25))
        x = cv2.warpAffine(x, a, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        b = a.copy()
        b[:, 2] /= OUT_STRIDE
        h, w = y.shape
        y = cv2.warpAffine(np.ascontiguousarray(y), b, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


# --------------------------------------------------------------------------------------------
# model


def build_model(widths=WIDTHS):
    import torch
    from torch import nn
    import torch.nn.functional as F

    def cbr(i, o, s=1, d=1):
        return nn.Sequential(nn.Conv2d(i, o, 3, s, d, dilation=d, bias=False),
                             nn.BatchNorm2d(o), nn.ReLU(inplace=True))

    a, b, c = widths

    class HandSegNet(nn.Module):
        """BGR 0..255 (N, 3, H, W), H and W multiples of 8 -> hand logits (N, 1, H/2, W/2)."""

        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.full((1, 3, 1, 1), 127.5))
            self.enc1 = nn.Sequential(cbr(3, a, 2), cbr(a, a))
            self.enc2 = nn.Sequential(cbr(a, b, 2), cbr(b, b))
            self.enc3 = nn.Sequential(cbr(b, c, 2), cbr(c, c, d=2), cbr(c, c, d=4), cbr(c, c))
            self.dec2 = cbr(c + b, b)
            self.dec1 = nn.Sequential(cbr(b + a, a), nn.Conv2d(a, 1, 1))

        def forward(self, x):
            x = (x - self.mean) * (1 / 64.0)
            e1 = self.enc1(x)
            e2 = self.enc2(e1)
            e3 = self.enc3(e2)
            d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode="bilinear",
                                                    align_corners=False), e2], 1))
            return self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="bilinear",
                                                      align_corners=False), e1], 1))

    return HandSegNet()


def _loss(logits, target):
    import torch
    import torch.nn.functional as F
    # outline pixels (target neither 0 nor 1 after a 3x3 max/min) count 4x: finger gaps
    t = target
    mx = F.max_pool2d(t, 3, 1, 1)
    mn = -F.max_pool2d(-t, 3, 1, 1)
    w = 1.0 + 3.0 * ((mx - mn) > 0.5).float()
    bce = (F.binary_cross_entropy_with_logits(logits, t, reduction="none") * w).mean()
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * t).sum((1, 2, 3)) + 1) / (p.sum((1, 2, 3)) + t.sum((1, 2, 3)) + 1)
    return bce + 0.5 * dice.mean()


def iou(logits: np.ndarray, target: np.ndarray) -> float:
    p, t = logits > 0, target > 0.5
    return float((p & t).sum() / max(1, (p | t).sum()))


def train(X, Y, steps: int, batch: int, seed: int = 0, log=print, Xv=None, Yv=None):
    import torch
    torch.manual_seed(seed)
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.1)
    rng = np.random.default_rng([seed, 5])
    t0 = time.time()
    for step in range(steps):
        idx = rng.integers(0, len(X), batch)
        xb, yb = zip(*(augment(X[i], Y[i], rng) for i in idx))
        xt = torch.from_numpy(np.stack(xb)).permute(0, 3, 1, 2).float()
        yt = torch.from_numpy(np.stack(yb))[:, None]
        model.train()
        loss = _loss(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            msg = f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f}s"
            if Xv is not None and (step % 250 == 0 or step == steps - 1):
                msg += f" val_iou {evaluate_iou(model, Xv, Yv):.4f}"
            log(msg)
    return model


def predict(model, X, batch: int = 16) -> np.ndarray:
    import torch
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(X), batch):
            xt = torch.from_numpy(X[i:i + batch]).permute(0, 3, 1, 2).float()
            out.append(model(xt)[:, 0].numpy())
    return np.concatenate(out)


def evaluate_iou(model, X, Y) -> float:
    L = predict(model, X)
    return float(np.mean([iou(l, y) for l, y in zip(L, Y)]))


def export(model, path: Path, size=(240, 320)) -> None:
    import torch
    model.eval()
    x = torch.zeros(1, 3, *size)
    torch.onnx.export(model, (x,), str(path), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch", 2: "h", 3: "w"},
                                    "logits": {0: "batch", 2: "oh", 3: "ow"}},
                      opset_version=17, dynamo=False)


# --------------------------------------------------------------------------------------------
# the command


def run(profile: str, work: Path, models_dir: Path, command: str, seed: int = 0,
        threads: int = 1, steps: int | None = None, log=print) -> dict:
    """Render, train, export fp32 + int8 into ``models_dir`` (manifest entries written there);
    checkpoints and the rendered data cache go to ``work``."""
    import torch
    from tools.train.sensor_quant import int8_report, latency_ms, quantize_int8

    torch.set_num_threads(max(1, threads))
    cfg = dict(PROFILES[profile])
    if steps:
        cfg["steps"] = steps
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    shared = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "opencv-calib"
    cache = work / f"data_{cfg['images']}_{cfg['val_images']}.npz"
    if cache.exists():
        d = np.load(cache)
        X, Y, Xv, Yv = d["X"], d["Y"], d["Xv"], d["Yv"]
    else:
        t0 = time.time()
        X, Y = render_set(cfg["images"], TRAIN_SEED + seed, shared, threads=threads)
        Xv, Yv = render_set(cfg["val_images"], VAL_SEED + seed, shared, threads=threads)
        np.savez(cache, X=X, Y=Y, Xv=Xv, Yv=Yv)
        log(f"rendered {len(X)} + {len(Xv)} views in {time.time() - t0:.0f}s")
    model = train(X, Y, cfg["steps"], cfg["batch"], seed, log, Xv, Yv)
    torch.save(model.state_dict(), work / "handseg.pt")
    val_iou = evaluate_iou(model, Xv, Yv)
    fp32 = models_dir / "hand_seg.onnx"
    int8 = models_dir / "hand_seg_int8.onnx"
    export(model, fp32, X.shape[1:3])
    calib = [x.transpose(2, 0, 1)[None].astype(np.float32) for x in X[:48]]
    quantize_int8(fp32, int8, calib, "image", exclude_ops=())
    import onnxruntime as ort
    res = {}
    feed = {"image": Xv[:1].transpose(0, 3, 1, 2).astype(np.float32)}
    for p in (fp32, int8):
        s = ort.InferenceSession(str(p), session_options(), providers=["CPUExecutionProvider"])
        L = np.concatenate([s.run(None, {"image": x.transpose(2, 0, 1)[None].astype(
            np.float32)})[0][:, 0] for x in Xv])
        res[p.name] = {"val_iou": round(float(np.mean([iou(l, y) for l, y in zip(L, Yv)])), 4),
                       "latency_ms_1thread": latency_ms(p, feed, threads=1),
                       "bytes": p.stat().st_size}
    res[int8.name]["operators"] = int8_report(int8)
    res["torch_val_iou"] = round(val_iou, 4)
    (work / "report.json").write_text(json.dumps(res, indent=1))
    log(json.dumps(res, indent=1))
    _manifest(models_dir, fp32, int8, res, cfg, command)
    return res


def _manifest(models_dir: Path, fp32: Path, int8: Path, res: dict, cfg: dict,
              command: str) -> None:
    from tools.manifest import update_entry
    data = (f"{cfg['images']} synthetic colour hand views (device.synth.hands with the shipped "
            f"palm generator; seed {TRAIN_SEED}), on synthetic clutter, tinted OpenCV chessboard "
            f"photos (../shared/data/opencv-calib) and plain backgrounds; validation "
            f"{cfg['val_images']} views of seed {VAL_SEED}; no real hand images")
    notes = ("colour view resized to longest side 320 px, padded to a multiple of 8, BGR 0..255 "
             "-> hand logits at half that resolution (device.vision.segmentation.NetSegmenter)")
    mp = models_dir / "manifest.json"
    update_entry(fp32.name, metrics=res[fp32.name], command=command, data=data, notes=notes,
                 extra={"steps": cfg["steps"]}, manifest_path=mp)
    update_entry(int8.name, metrics=res[int8.name], command=command,
                 data="static int8 QDQ of hand_seg.onnx (per-channel weights, MinMax) "
                      "calibrated on 48 training views", notes=notes,
                 extra={"quantized_from": fp32.name}, manifest_path=mp)
