"""Sensor frames with no hand in them: what the presence check (device.models.presence) must
refuse before super-resolution and liveness ever see the frame.

Every frame is a float32 capture in [0, 1] at the sensor's capture size, drawn by
:func:`no_hand_frame` from a *kind* and a generator.  The kinds come in two families:

* :data:`TRAIN_KINDS` -- what the presence classifier is trained and validated on: noise
  (uniform, Gaussian, salt-and-pepper), flat frames (black, saturated, any grey), gradients,
  random blobs and shapes, smooth random fields, gratings and checkers, photos of other scenes,
  visible-light palm photos (the wrong modality), pixel- and block-shuffled hand frames, frames
  of the other sensor, and heavily blurred hand frames;
* :data:`HELDOUT_KINDS` -- texture families no model is trained or tuned on (Voronoi cells,
  1/f fractal noise, printed glyphs, rings and moire), used only in the held-out test.

Kinds that start from pictures take them from ``sources`` (a dict of lists of grey frames,
float32 in [0, 1] or uint8): ``photos`` (scenes), ``visible`` (visible-light palm photos),
``hands`` (hand frames of *this* sensor: bona fide or attack captures), ``other`` (bona fide
captures of the other sensor).  Which pictures go to training and which to the held-out test is the
caller's choice (tools/train/presence.py keeps them disjoint).  Every frame ends with a random
photometric change (gain, offset, gamma, read noise) so that grey levels carry no class.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

SIZE = (128, 128)

TRAIN_KINDS = ("uniform_noise", "gaussian_noise", "salt_pepper", "flat", "gradient", "blobs",
               "shapes", "smooth_field", "grating", "photo", "wrong_modality", "pixel_shuffle",
               "block_shuffle", "other_sensor", "blurred")
HELDOUT_KINDS = ("voronoi", "fractal", "glyphs", "rings")
KINDS = TRAIN_KINDS + HELDOUT_KINDS
SOURCE_OF = {"photo": "photos", "wrong_modality": "visible", "pixel_shuffle": "hands",
             "block_shuffle": "hands", "blurred": "hands", "other_sensor": "other"}
"""The kinds that need pictures, and the ``sources`` key they take them from."""

BLUR_SIGMA_PX = (8.0, 20.0)
"""Gaussian blur of the "heavily blurred" kind, in capture pixels (a 128-px frame): the hand is
a smooth blob with no outline sharper than ~8 px and no inner structure (a hand blurred
less is still a hand: liveness judges it)."""


# --------------------------------------------------------------------------------------------
# helpers


def _f32(img) -> np.ndarray:
    a = np.asarray(img)
    return a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)


def _coords(size):
    h, w = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return y / (h - 1), x / (w - 1)


def _norm(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _smooth(rng, size, cells: float) -> np.ndarray:
    """Low-frequency random field, about ``cells`` blobs across, in [0, 1]."""
    h, w = size
    c = max(2, int(round(cells)))
    g = rng.normal(0, 1, (c + 2, c + 2)).astype(np.float32)
    return _norm(cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC))


def _pick(rng, pool, kind):
    if not pool:
        raise ValueError(f"no-hand kind {kind!r} needs sources[{SOURCE_OF[kind]!r}]")
    return _f32(pool[int(rng.integers(len(pool)))])


def _crop(rng, img: np.ndarray, size, zoom=(1.0, 2.5)) -> np.ndarray:
    """A random square crop of ``img`` (1/zoom of its short side), resized to ``size``."""
    h, w = img.shape[:2]
    side = max(8, int(min(h, w) / rng.uniform(*zoom)))
    r, c = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    out = cv2.resize(img[r:r + side, c:c + side], (size[1], size[0]),
                     interpolation=cv2.INTER_AREA)
    if rng.uniform() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def photometric(img: np.ndarray, rng, noise: bool = True) -> np.ndarray:
    """Random gain, offset and gamma, sometimes read noise; clipped to [0, 1]."""
    a = np.clip(img, 0, 1) ** rng.uniform(0.6, 1.6)
    a = a * rng.uniform(0.6, 1.2) + rng.uniform(-0.1, 0.2)
    if noise and rng.uniform() < 0.5:
        a = a + rng.normal(0, rng.uniform(0.002, 0.03), a.shape)
    return np.clip(a, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# the kinds


def _uniform_noise(rng, size, src):
    lo = rng.uniform(0, 0.5)
    return rng.uniform(lo, rng.uniform(lo + 0.1, 1.0), size)


def _gaussian_noise(rng, size, src):
    return rng.normal(rng.uniform(0.2, 0.8), rng.uniform(0.03, 0.35), size)


def _salt_pepper(rng, size, src):
    base = np.full(size, rng.uniform(0, 1), np.float32)
    if rng.uniform() < 0.5:
        base = base + rng.normal(0, rng.uniform(0.01, 0.1), size)
    u = rng.uniform(0, 1, size)
    p = rng.uniform(0.02, 0.5)
    base[u < p / 2] = 0.0
    base[u > 1 - p / 2] = 1.0
    return base


def _flat(rng, size, src):
    v = float(rng.choice([0.0, 1.0, rng.uniform(0, 1)], p=[0.3, 0.3, 0.4]))
    a = np.full(size, v, np.float32)
    if rng.uniform() < 0.5:
        a = a + rng.normal(0, rng.uniform(0.001, 0.02), size)
    return a


def _gradient(rng, size, src):
    y, x = _coords(size)
    if rng.uniform() < 0.6:                                   # linear
        t = rng.uniform(0, 2 * np.pi)
        g = np.cos(t) * x + np.sin(t) * y
    else:                                                     # radial (a lamp, a vignette)
        cy, cx = rng.uniform(-0.2, 1.2, 2)
        g = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)
    g = _norm(g)
    if rng.uniform() < 0.3:
        g = g ** rng.uniform(0.3, 3)
    lo = rng.uniform(0, 0.6)
    return lo + g * rng.uniform(0.1, 1 - lo)


def _blobs(rng, size, src):
    h, w = size
    if rng.uniform() < 0.4:                                   # thresholded random field
        f = _smooth(rng, size, rng.uniform(2, 8))
        m = (f > rng.uniform(0.3, 0.7)).astype(np.float32)
    else:
        m = np.zeros(size, np.float32)
        for _ in range(int(rng.integers(1, 8))):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            ax = (int(rng.integers(5, w // 2)), int(rng.integers(5, h // 2)))
            cv2.ellipse(m, c, ax, float(rng.uniform(0, 180)), 0, 360,
                        float(rng.uniform(0.3, 1)), -1, cv2.LINE_AA)
    m = cv2.GaussianBlur(m, (0, 0), rng.uniform(0.5, 4))
    bg, fg = rng.uniform(0, 1, 2)
    return bg + (fg - bg) * np.clip(m, 0, 1)


def _shapes(rng, size, src):
    h, w = size
    a = np.full(size, rng.uniform(0, 1), np.float32)
    for _ in range(int(rng.integers(1, 12))):
        col = float(rng.uniform(0, 1))
        k = rng.integers(0, 4)
        if k == 0:
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.rectangle(a, p1, p2, col, -1 if rng.uniform() < 0.7 else int(rng.integers(1, 6)))
        elif k == 1:
            cv2.circle(a, (int(rng.integers(0, w)), int(rng.integers(0, h))),
                       int(rng.integers(3, w // 2)), col, -1)
        elif k == 2:
            pts = rng.integers(0, [w, h], (int(rng.integers(3, 8)), 2)).astype(np.int32)
            cv2.fillPoly(a, [pts], col, cv2.LINE_AA)
        else:
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(a, p1, p2, col, int(rng.integers(1, 10)), cv2.LINE_AA)
    return a


def _smooth_field(rng, size, src):
    f = _smooth(rng, size, rng.uniform(1.5, 16))
    if rng.uniform() < 0.5:
        f = 0.6 * f + 0.4 * _smooth(rng, size, rng.uniform(10, 40))
    return _norm(f) * rng.uniform(0.2, 1) + rng.uniform(0, 0.3)


def _grating(rng, size, src):
    y, x = _coords(size)
    t = rng.uniform(0, np.pi)
    f = rng.uniform(2, 40)
    u = np.cos(t) * x + np.sin(t) * y
    if rng.uniform() < 0.4:                                   # checkerboard
        v = -np.sin(t) * x + np.cos(t) * y
        g = ((np.floor(u * f) + np.floor(v * f)) % 2).astype(np.float32)
        g = cv2.GaussianBlur(g, (0, 0), rng.uniform(0.3, 1.5))
    else:
        g = 0.5 + 0.5 * np.sin(2 * np.pi * f * u + rng.uniform(0, 6.3))
    return g * rng.uniform(0.2, 1) + rng.uniform(0, 0.3)


def _photo(rng, size, src):
    return _crop(rng, _pick(rng, src.get("photos"), "photo"), size)


def _wrong_modality(rng, size, src):
    return _crop(rng, _pick(rng, src.get("visible"), "wrong_modality"), size, (1.0, 1.6))


def _hand(rng, size, src, kind):
    img = _pick(rng, src.get("hands"), kind)
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA) \
        if img.shape != tuple(size) else img


def pixel_shuffle(img: np.ndarray, rng) -> np.ndarray:
    """The pixels of ``img`` in a random order (same histogram, no structure)."""
    return rng.permutation(img.ravel()).reshape(img.shape)


def block_shuffle(img: np.ndarray, rng, block: int) -> np.ndarray:
    """``img`` cut into ``block`` x ``block`` tiles put back in a random order."""
    h, w = img.shape
    bh, bw = h // block, w // block
    tiles = img[:bh * block, :bw * block].reshape(bh, block, bw, block).swapaxes(1, 2)
    tiles = tiles.reshape(bh * bw, block, block)[rng.permutation(bh * bw)]
    out = img.copy()
    out[:bh * block, :bw * block] = tiles.reshape(bh, bw, block, block).swapaxes(1, 2).reshape(
        bh * block, bw * block)
    return out


def _pixel_shuffle(rng, size, src):
    return pixel_shuffle(_hand(rng, size, src, "pixel_shuffle"), rng)


def _block_shuffle(rng, size, src):
    return block_shuffle(_hand(rng, size, src, "block_shuffle"), rng,
                         int(rng.choice([4, 8, 16, 32])))


def _other_sensor(rng, size, src):
    img = _pick(rng, src.get("other"), "other_sensor")
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA) \
        if img.shape != tuple(size) else img


def _blurred(rng, size, src):
    return cv2.GaussianBlur(_hand(rng, size, src, "blurred"), (0, 0),
                            rng.uniform(*BLUR_SIGMA_PX))


# held-out families ---------------------------------------------------------------------------


def _voronoi(rng, size, src):
    h, w = size
    n = int(rng.integers(6, 120))
    pts = rng.uniform(0, 1, (n, 2)) * [h, w]
    yy, xx = np.mgrid[0:h, 0:w]
    d = (yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2
    if rng.uniform() < 0.5:                                   # flat cells
        a = rng.uniform(0, 1, n)[np.argmin(d, -1)]
    else:                                                     # cell walls (Worley F2 - F1)
        s = np.sort(d, -1)
        a = _norm(np.sqrt(s[..., 1]) - np.sqrt(s[..., 0]))
    return a.astype(np.float32)


def _fractal(rng, size, src):
    h, w = size
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy ** 2 + fx ** 2)
    f[0, 0] = 1.0
    beta = rng.uniform(1.0, 3.2)                               # 1/f^beta spectrum
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** (beta / 2)
    spec[0, 0] = 0
    return _norm(np.fft.irfft2(spec, s=(h, w))).astype(np.float32)


def _glyphs(rng, size, src):
    h, w = size
    a = np.full(size, int(rng.integers(0, 256)), np.uint8)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789#%&@"
    for _ in range(int(rng.integers(2, 30))):
        txt = "".join(rng.choice(list(letters), int(rng.integers(1, 8))))
        cv2.putText(a, txt, (int(rng.integers(-20, w)), int(rng.integers(5, h + 10))),
                    int(rng.integers(0, 8)), float(rng.uniform(0.3, 2.5)),
                    int(rng.integers(0, 256)), int(rng.integers(1, 4)), cv2.LINE_AA)
    return a.astype(np.float32) / 255.0


def _rings(rng, size, src):
    y, x = _coords(size)
    out = np.zeros(size, np.float32)
    for _ in range(int(rng.integers(1, 3))):
        cy, cx = rng.uniform(-0.5, 1.5, 2)
        r = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)
        out += 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 40) * r ** rng.uniform(0.7, 1.8))
    return _norm(out)


_KIND_FN = {"uniform_noise": _uniform_noise, "gaussian_noise": _gaussian_noise,
            "salt_pepper": _salt_pepper, "flat": _flat, "gradient": _gradient,
            "blobs": _blobs, "shapes": _shapes, "smooth_field": _smooth_field,
            "grating": _grating, "photo": _photo, "wrong_modality": _wrong_modality,
            "pixel_shuffle": _pixel_shuffle, "block_shuffle": _block_shuffle,
            "other_sensor": _other_sensor, "blurred": _blurred, "voronoi": _voronoi,
            "fractal": _fractal, "glyphs": _glyphs, "rings": _rings}
# kinds whose own statistics are the point: no photometric change, no added noise
_RAW = {"uniform_noise", "gaussian_noise", "salt_pepper", "flat", "pixel_shuffle"}


def no_hand_frame(kind: str, rng: np.random.Generator, sources: dict | None = None,
                  size: tuple[int, int] = SIZE) -> np.ndarray:
    """One frame with no hand of ``kind`` (see :data:`KINDS`), float32 (H, W) in [0, 1]."""
    if kind not in _KIND_FN:
        raise ValueError(f"unknown no-hand kind {kind!r}; kinds: {', '.join(KINDS)}")
    a = np.asarray(_KIND_FN[kind](rng, tuple(size), sources or {}), np.float32)
    if kind not in _RAW:
        a = photometric(a, rng, noise=kind != "blurred")
    return np.clip(a, 0, 1).astype(np.float32)


def no_hand_frames(n: int, seed: int, kinds=TRAIN_KINDS, sources: dict | None = None,
                   size: tuple[int, int] = SIZE, tag: int = 0):
    """``n`` frames cycling over ``kinds`` (kinds whose sources are missing are left out), each
    from its own generator ``(seed, tag, i)``: (float32 (n, H, W), list of kinds)."""
    sources = sources or {}
    usable = [k for k in kinds if k not in SOURCE_OF or sources.get(SOURCE_OF[k])]
    if not usable:
        raise ValueError("no usable no-hand kind")
    frames = np.zeros((n,) + tuple(size), np.float32)
    names = []
    for i in range(n):
        k = usable[i % len(usable)]
        frames[i] = no_hand_frame(k, np.random.default_rng([seed, 77, tag, i]), sources, size)
        names.append(k)
    return frames, names


def write_no_hand(out_dir, n: int, seed: int, kinds=KINDS, sources: dict | None = None,
                  size: tuple[int, int] = SIZE) -> dict:
    """Write ``n`` no-hand frames as ``out/attack/no_hand/<i>.png`` (the liveness layout, so
    ``palmgate evaluate-liveness`` scores them as the species ``no_hand``) and
    ``out/no_hand.json`` (the kind of every file)."""
    out = Path(out_dir)
    d = out / "attack" / "no_hand"
    d.mkdir(parents=True, exist_ok=True)
    frames, names = no_hand_frames(n, seed, kinds, sources, size)
    files = []
    for i, (f, k) in enumerate(zip(frames, names)):
        rel = f"attack/no_hand/{i:05d}.png"
        cv2.imwrite(str(out / rel), np.round(f * 255).astype(np.uint8))
        files.append({"file": rel, "kind": k})
    man = {"seed": seed, "size": list(size), "kinds": sorted(set(names)), "files": files}
    (out / "no_hand.json").write_text(json.dumps(man, indent=1))
    return man
