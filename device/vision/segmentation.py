"""Hand/background segmentation for the palm-region step (numpy + OpenCV only).

Two modalities:

* ``nir`` -- a grey near-infrared (or transmission) frame: the hand is lit from the sensor side
  and the background is dark. Fingers away from the light are much darker than the palm, so a
  single Otsu threshold cuts them off; the hand mask is the part above the *lower* of two Otsu
  levels (Otsu again on the pixels below the first one), which keeps the fingers and leaves the
  finger gaps (and the dark parts of a positioning peg) as background.
* ``visible`` -- a colour photo on any background: a broad skin-colour rule in YCrCb picks a seed
  component, a per-image skin model (Gaussian in Cr/Cb) re-thresholds around it, and GrabCut
  refines the boundary from that seed. Both run at a working size of at most 320 px.

``segment_hand`` returns a uint8 mask (0/1) at the input's resolution: the largest connected
component, holes filled, lightly smoothed.

:class:`NetSegmenter` is the fast path for colour views: a small encoder-decoder trained on
synthetic hands (``python -m tools.train handseg``; models/hand_seg[_int8].onnx) gives the hand
mask in a few milliseconds, where GrabCut takes about 110 ms a 640x480 view.
``device.vision.regions.extract_regions(..., segmenter=...)`` tries its mask first and falls back to
the classical hypotheses when no valid set of finger valleys comes out of it.
"""
from __future__ import annotations

import cv2
import numpy as np

WORK_SIDE = 320
"""Longest side of the working image of the visible-light segmentation."""


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey copy of a grey, BGR or BGRA image."""
    im = np.asarray(image)
    if im.ndim == 2:
        return im if im.dtype == np.uint8 else cv2.normalize(im, None, 0, 255, cv2.NORM_MINMAX,
                                                               cv2.CV_8U)
    if im.shape[2] == 4:
        im = im[..., :3]
    if im.shape[2] == 1:
        return to_grey(im[..., 0])
    return cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)


def is_grey(image: np.ndarray, tol: float = 3.0) -> bool:
    """True for one-channel images and colour images whose channels are (nearly) equal."""
    im = np.asarray(image)
    if im.ndim == 2 or im.shape[2] == 1:
        return True
    sub = im[::4, ::4, :3].astype(np.int16)      # every 4th pixel, converted alone
    return float(np.abs(sub[..., 0] - sub[..., 1]).mean()
                 + np.abs(sub[..., 1] - sub[..., 2]).mean()) / 2 < tol


def modality_of(image: np.ndarray) -> str:
    """``"nir"`` for grey frames, ``"visible"`` for colour ones."""
    return "nir" if is_grey(image) else "visible"


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected foreground component of a 0/1 mask, holes filled (uint8 0/1)."""
    m = (np.asarray(mask) > 0).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return np.zeros_like(m)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    m = (lab == k).astype(np.uint8)
    return fill_holes(m)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions that do not touch the image border."""
    m = (mask > 0).astype(np.uint8)
    inv = 1 - m
    n, lab = cv2.connectedComponents(inv, connectivity=4)
    if n <= 1:
        return m
    keep = np.ones(n, np.uint8)         # label -> output: 0 for background reaching the border
    for edge in (lab[0], lab[-1], lab[:, 0], lab[:, -1]):
        keep[edge] = 0
    keep[0] = 1                         # label 0: the mask itself
    return keep[lab]


def _smooth(mask: np.ndarray, k: int) -> np.ndarray:
    """Open with a k-disc (specks, thin background bridges), close with a small one (narrow
    finger gaps stay open)."""
    if k < 3:
        return mask
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k | 1, k | 1))
    m = cv2.morphologyEx(mask, cv2.MORPH_OPEN, ker)
    return cv2.morphologyEx(m, cv2.MORPH_CLOSE,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))


def _nir_levels(b: np.ndarray) -> tuple[float, float]:
    """(low, high) Otsu levels of a blurred grey frame: ``high`` splits the bright palm from
    the rest, ``low`` (Otsu again below ``high``) the dark background from dim tissue."""
    t_hi, _ = cv2.threshold(b, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    low = b[b <= t_hi]
    if low.size > 100 and int(low.max()) > int(low.min()):
        t_lo, _ = cv2.threshold(low.reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    else:
        t_lo = t_hi
    return float(t_lo), float(t_hi)


def segment_nir_candidates(grey: np.ndarray):
    """Hand-mask hypotheses of a grey NIR frame (dark background, bright hand), most likely
    first: the hand above the midpoint of the two Otsu levels (dim objects such as a
    positioning peg drop out, so the gap they sit in opens), then above the low level (dim
    fingers far from the light stay in)."""
    g = to_grey(grey)
    b = cv2.GaussianBlur(g, (5, 5), 0)
    if float(b.std()) < 4.0:  # a flat frame: nothing to segment
        yield np.zeros(g.shape, np.uint8)
        return
    t_lo, t_hi = _nir_levels(b)
    k = max(3, int(round(min(g.shape) * 0.012)))
    for t in ((t_lo + t_hi) / 2, t_lo):
        yield largest_component(_smooth((b > t).astype(np.uint8), k))


def segment_nir(grey: np.ndarray) -> np.ndarray:
    """The most likely hand mask of a grey NIR frame (uint8 0/1)."""
    return next(iter(segment_nir_candidates(grey)))


def _skin_prior(ycc: np.ndarray) -> np.ndarray:
    """Broad skin-colour rule in YCrCb (uint8 0/1)."""
    y, cr, cb = (ycc[..., i].astype(np.int16) for i in range(3))
    return ((cr >= 133) & (cr <= 185) & (cb >= 70) & (cb <= 135) & (cr - cb >= 8)
            & (y >= 35)).astype(np.uint8)


def inner_distance(mask: np.ndarray) -> np.ndarray:
    """Distance to the nearest background pixel, counting outside the image as background (a
    region cut by the image border is not thicker than what is seen of it)."""
    m = cv2.copyMakeBorder((mask > 0).astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(m, cv2.DIST_L2, 5)[1:-1, 1:-1]


def _palm_core(mask: np.ndarray, frac: float = 0.7) -> np.ndarray:
    """A disc of ``frac`` times the largest inscribed circle of ``mask``: inside the palm."""
    dist = inner_distance(mask)
    _, r, _, c = cv2.minMaxLoc(dist)
    core = np.zeros_like(mask)
    cv2.circle(core, c, max(2, int(frac * r)), 1, -1)
    return core & mask


def _skin_distance(ycc: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance (Cr/Cb) of every pixel to the skin colour of ``core``."""
    x = ycc[..., 1:].reshape(-1, 2).astype(np.float32)
    s = x[core.ravel() > 0]
    mu = s.mean(0)
    cov = np.cov(s.T) + np.eye(2, dtype=np.float32) * 4.0
    d = x - mu
    md = np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov).astype(np.float32), d)
    return md.reshape(ycc.shape[:2])


def _cores(seed: np.ndarray, n_max: int = 3, frac: float = 0.7) -> list[np.ndarray]:
    """Discs inside the thickest parts of ``seed`` (the largest inscribed circle first, then
    further local maxima at least 40 % as thick): candidate palm interiors."""
    dist = inner_distance(seed)
    out, r0 = [], None
    d = dist.copy()
    for _ in range(n_max):
        _, r, _, c = cv2.minMaxLoc(d)
        if r <= 1 or (r0 is not None and r < 0.4 * r0):
            break
        r0 = r0 or r
        core = np.zeros_like(seed)
        cv2.circle(core, c, max(2, int(frac * r)), 1, -1)
        out.append(core & seed)
        cv2.circle(d, c, int(2.2 * r), 0, -1)
    return out


def _visible_from_core(small: np.ndarray, ycc: np.ndarray, core: np.ndarray, k: int,
                       grabcut_iters: int):
    """Grow a skin region from a palm disc with the disc's own colour model, then GrabCut.
    Returns the mask and GrabCut's (background, foreground) colour models (None without)."""
    sh, sw = small.shape[:2]
    md = _skin_distance(ycc, core)
    adapt = _component_at(_smooth(((md <= 12.0).astype(np.uint8) | core), k), core)
    core = _palm_core(adapt)
    md = _skin_distance(ycc, adapt & (md <= 6.0).astype(np.uint8) | core)
    adapt = _component_at(_smooth(((md <= 12.0).astype(np.uint8) | core), k), core)
    # GrabCut: certain foreground = the palm disc, probable foreground = the tight skin
    # component, background = far from the image's own skin colour, probable background = the
    # rest (GrabCut may grow the hand into it: pale or shaded skin)
    gc = np.full((sh, sw), cv2.GC_PR_BGD, np.uint8)
    gc[(md > 49.0) & (adapt == 0)] = cv2.GC_BGD
    gc[(adapt > 0) & (md <= 4.0)] = cv2.GC_PR_FGD
    gc[_palm_core(adapt, 0.8) > 0] = cv2.GC_FGD
    m, models = adapt, None
    if grabcut_iters > 0 and (gc == cv2.GC_BGD).any():
        bgm, fgm = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(0x5EED)  # GrabCut's k-means draws from OpenCV's global RNG
        try:
            cv2.grabCut(small, gc, None, bgm, fgm, grabcut_iters, cv2.GC_INIT_WITH_MASK)
            m = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
            models = (bgm, fgm)
        except cv2.error:
            pass
    return _component_at(_smooth(m, k), core), models


def _gmm_loglik(model: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Log-likelihood of BGR pixels (N, 3) under a GrabCut colour model (1, 65): 5 weights,
    5 means, 5 covariances (OpenCV's layout)."""
    p = model.ravel()
    w, mu, cov = p[:5], p[5:20].reshape(5, 3), p[20:65].reshape(5, 3, 3)
    out = np.zeros(len(x))
    for k in range(5):
        if w[k] <= 0:
            continue
        c = cov[k] + np.eye(3) * 1e-2
        d = x - mu[k]
        md = np.einsum("ni,ij,nj->n", d, np.linalg.inv(c), d)
        out += w[k] * np.exp(-0.5 * md) / np.sqrt((2 * np.pi) ** 3 * max(np.linalg.det(c), 1e-12))
    return np.log(out + 1e-300)


def _refine_boundary(im: np.ndarray, mask: np.ndarray, models, s: float) -> np.ndarray:
    """Re-decide the pixels near the outline of an up-scaled mask at full resolution with
    GrabCut's own colour models, so that finger gaps narrower than a working-size pixel open
    again."""
    if models is None or s >= 1:
        return mask
    r = int(np.ceil(1.5 / s))
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    band = (cv2.dilate(mask, ker) > 0) & (cv2.erode(mask, ker) == 0)
    x = cv2.GaussianBlur(im, (3, 3), 0)[band].astype(np.float64)
    bgm, fgm = models
    keep = _gmm_loglik(fgm, x) >= _gmm_loglik(bgm, x)
    out = mask.copy()
    out[band] = keep.astype(np.uint8)
    out = cv2.morphologyEx(out, cv2.MORPH_OPEN,
                           cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    return _component_at(out, cv2.erode(mask, ker))


def _component_at(mask: np.ndarray, core: np.ndarray) -> np.ndarray:
    """The connected component of ``mask`` that overlaps ``core`` most, holes filled."""
    m = (mask > 0).astype(np.uint8)
    n, lab = cv2.connectedComponents(m, connectivity=8)
    if n <= 1:
        return m
    hits = np.bincount(lab[core > 0].ravel(), minlength=n)
    hits[0] = 0
    if hits.max() == 0:
        return largest_component(m)
    return fill_holes((lab == int(np.argmax(hits))).astype(np.uint8))


def _upscale(m: np.ndarray, shape, s: float) -> np.ndarray:
    h, w = shape
    if s >= 1:
        return m
    m = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return (cv2.GaussianBlur(m, (0, 0), 0.5 / s) > 0.5).astype(np.uint8)


def segment_visible_candidates(bgr: np.ndarray, grabcut_iters: int = 4, n_cores: int = 3):
    """Hand-mask hypotheses of a colour photo, most likely first (a generator: the caller
    stops when one passes its shape test). Each grows a skin region from a disc inside one of
    the thickest parts of the skin-coloured area (so a skin-coloured background that touches
    the hand gets its own hypothesis instead of spoiling the hand's colour model)."""
    im = np.asarray(bgr)[..., :3]
    h, w = im.shape[:2]
    s = min(1.0, WORK_SIDE / max(h, w))
    small = cv2.resize(im, (max(8, round(w * s)), max(8, round(h * s))),
                       interpolation=cv2.INTER_AREA) if s < 1 else im.copy()
    small = cv2.GaussianBlur(small, (3, 3), 0)
    # a median filter removes thin creases (darker, redder lines across the finger bases) from
    # the colour decisions, so they do not cut fingers off the palm
    ycc = cv2.medianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb), 5)
    sh, sw = small.shape[:2]
    k = max(3, int(round(min(sh, sw) * 0.02)))
    prior = _smooth(_skin_prior(ycc), k)
    seed = largest_component(prior)
    if seed.sum() < 0.01 * sh * sw:
        return
    for core in _cores(prior, n_cores):
        m, models = _visible_from_core(small, ycc, core, k, grabcut_iters)
        yield _refine_boundary(im, _upscale(m, (h, w), s), models, s)


def segment_visible(bgr: np.ndarray, grabcut_iters: int = 4) -> np.ndarray:
    """The most likely hand mask of a colour photo (uint8 0/1; all zero when no skin)."""
    for m in segment_visible_candidates(bgr, grabcut_iters, n_cores=1):
        return m
    return np.zeros(np.asarray(bgr).shape[:2], np.uint8)


NET_SIDE = 320
"""Longest side of :class:`NetSegmenter`'s input (the trained network's scale)."""
NET_PAD = 8
NET_STRIDE = 2


def net_input_size(h: int, w: int) -> tuple[int, int, int, int]:
    """(resized height, width, padded height, width) of the segmentation network's input for
    an h x w frame: longest side ``NET_SIDE``, each side padded up to a multiple of
    ``NET_PAD`` (the training data is made at this size too)."""
    s = NET_SIDE / max(h, w)
    nh, nw = max(NET_PAD, round(h * s)), max(NET_PAD, round(w * s))
    return nh, nw, -(-nh // NET_PAD) * NET_PAD, -(-nw // NET_PAD) * NET_PAD


class NetSegmenter:
    """Hand mask of a colour view from the shipped segmentation network (onnxruntime).

    ``precision``: "int8" (models/hand_seg_int8.onnx) or "fp32" (models/hand_seg.onnx); the
    file is checked against models/manifest.json. Thread-safe (one onnxruntime session)."""

    def __init__(self, precision: str = "int8", models_dir=None, threads: int = 1):
        from device.models.model import DEFAULT_MODELS_DIR, Model
        if precision not in ("int8", "fp32"):
            raise ValueError(f"precision must be int8 or fp32, not {precision!r}")
        name = "hand_seg_int8.onnx" if precision == "int8" else "hand_seg.onnx"
        self.model = Model(name, models_dir or DEFAULT_MODELS_DIR, threads, arena=False)
        self.precision = precision

    def logits(self, bgr: np.ndarray) -> np.ndarray:
        """Hand logits of a BGR view at the input's resolution (float32 (H, W))."""
        im = np.asarray(bgr)[..., :3]
        h, w = im.shape[:2]
        nh, nw, ph, pw = net_input_size(h, w)
        x = np.zeros((ph, pw, 3), np.float32)
        x[:nh, :nw] = cv2.resize(im, (nw, nh), interpolation=cv2.INTER_AREA)
        out = self.model(image=x.transpose(2, 0, 1)[None])["logits"][0, 0]
        out = out[:-(-nh // NET_STRIDE), :-(-nw // NET_STRIDE)]
        return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        """The hand mask (uint8 0/1 at the input's size): the largest component, holes
        filled."""
        return largest_component(self.logits(bgr) > 0)


def segment_hand(image: np.ndarray, modality: str = "auto") -> tuple[np.ndarray, str]:
    """(mask uint8 0/1 at the input's size, modality used). ``modality``: auto|nir|visible."""
    if modality == "auto":
        modality = modality_of(image)
    if modality == "nir":
        return segment_nir(image), modality
    if modality == "visible":
        if is_grey(image):
            raise ValueError("visible-light segmentation needs a colour image")
        return segment_visible(image), modality
    raise ValueError(f"unknown modality {modality!r}; use auto, nir or visible")
