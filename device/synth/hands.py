"""Visible-light views of a whole hand with ground-truth keypoints.

The hand is planar-ish: its palm side (palm, fingers, thumb, forearm, with the caller's palm-print
texture on the palm ROI) is painted once per presentation on a *canvas* in the hand frame
(0.4 mm/px), and every view is a plane-induced homography of that canvas through a pinhole
camera, composited over a synthetic cluttered background (or one the caller gives), then lit,
blurred and noised per view.  Keypoints are the same hand-frame points pushed through the same
homography, so they are exact.

Modes:

* ``multi_camera`` -- K fixed cameras at different yaw/pitch (spread over about ±25°) looking at
  one hand pose; the rig can be passed in (a gate's cameras do not move between presentations).
* ``motion`` -- one camera, K consecutive frames while the palm translates/rotates a little, with
  motion blur along the image motion.

Coordinates: world = the gate frame in mm; the hand frame (see ``hand_geometry``) is placed in it
by ``R_hand``, ``t_hand``; a camera maps world to camera by ``X_c = R X_w + t`` and to pixels by
``K``.  A camera in front of the palm sees the fingers up and, for a right hand, the thumb on the
image right.  ``roi_corners`` correspond to the texture's pixel centres (0,0), (127,0),
(127,127), (0,127), so ``cv2.getPerspectiveTransform(roi_corners, those)`` re-extracts the ROI.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.synth.hand_geometry import (VALLEY_NAMES, HandGeometry, HandLayout, HandPose,
                                       hand_layout, perturb_pose, rotation_3d, step_pose)

CANVAS_MM_PER_PX = 0.4
"""Resolution of the painted hand canvas."""

TEXTURE_SIZE = 128
"""Side of the palm-print ROI texture in pixels."""


@dataclass(frozen=True, eq=False)
class Camera:
    """Pinhole camera: intrinsics ``K`` (3x3) and world-to-camera ``R`` (3x3), ``t`` (3,) in mm."""

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray

    def to_dict(self) -> dict:
        """JSON-serialisable form (``dist`` is always zero: the renderer has no distortion)."""
        return {"K": self.K.tolist(), "R": self.R.tolist(), "t": self.t.tolist(),
                "dist": [0.0] * 5}


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 1.0, 0.0])
            ) -> tuple[np.ndarray, np.ndarray]:
    """World-to-camera ``(R, t)`` of a camera at ``eye`` looking at ``target``, with world
    ``up`` pointing up in the image."""
    z = target - eye
    z = z / np.linalg.norm(z)
    x = np.cross(z, up)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return R, -R @ eye


def sample_rig(rng: np.random.Generator, views: int, size: tuple[int, int] = (480, 640),
               spread_deg: float = 25.0) -> list[Camera]:
    """K cameras around the gate's palm position, yaw spread over ±``spread_deg`` (one camera:
    near frontal), pitch alternating up/down by up to ~12°, 240-290 mm away."""
    h, w = size
    cams = []
    yaws = np.linspace(-spread_deg, spread_deg, views) if views > 1 else np.zeros(1)
    for k in range(views):
        f = rng.uniform(560, 640) * w / 640
        K = np.array([[f, 0, w / 2 + rng.normal(0, 4)], [0, f, h / 2 + rng.normal(0, 4)],
                      [0, 0, 1.0]])
        yaw = np.deg2rad(yaws[k] + rng.normal(0, 2.5))
        pitch = np.deg2rad((1 if k % 2 else -1) * rng.uniform(0, 12) if views > 1
                           else rng.normal(0, 4))
        d = rng.uniform(240, 290)
        eye = d * np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch),
                            np.cos(yaw) * np.cos(pitch)])
        target = np.array([rng.normal(0, 6), 32 + rng.normal(0, 6), 0.0])
        R, t = look_at(eye + target * np.array([1, 1, 0]), target)
        cams.append(Camera(K, R, t))
    return cams


# --------------------------------------------------------------------------------------------
# canvas


@dataclass(frozen=True, eq=False)
class _Canvas:
    bgr: np.ndarray          # (h, w, 3) uint8
    alpha: np.ndarray        # (h, w) uint8
    to_hand: np.ndarray      # 3x3: canvas pixel -> hand-frame mm


def _canvas_frame(layout: HandLayout, margin: float = 6.0) -> tuple[np.ndarray, int, int]:
    pts = np.concatenate([layout.palm_polygon, layout.forearm_polygon, *layout.finger_polygons])
    lo = pts.min(0) - margin
    hi = pts.max(0) + margin
    p = CANVAS_MM_PER_PX
    w = int(np.ceil((hi[0] - lo[0]) / p))
    h = int(np.ceil((hi[1] - lo[1]) / p))
    # u = (x - lo_x)/p, v = (hi_y - y)/p  ->  x = lo_x + p u, y = hi_y - p v
    to_hand = np.array([[p, 0, lo[0]], [0, -p, hi[1]], [0, 0, 1.0]])
    return to_hand, w, h


def _to_px(to_hand: np.ndarray, pts: np.ndarray) -> np.ndarray:
    inv = np.linalg.inv(to_hand)
    p = np.asarray(pts, np.float64)
    return p @ inv[:2, :2].T + inv[:2, 2]


def _fix(p: np.ndarray) -> np.ndarray:
    """Points to int32 with 4 fractional bits for sub-pixel cv2 drawing (shift=4)."""
    return np.round(np.asarray(p) * 16).astype(np.int32)


def _texture_modulation(tex: np.ndarray, strength: float) -> np.ndarray:
    """Palm-print texture -> multiplicative luminance around 1 (creases < 1), keeping the
    texture's own relative contrast (``(t / median) ** strength``)."""
    t = np.maximum(tex.astype(np.float32), 1e-3)
    return np.clip((t / float(np.median(t))) ** strength, 0.3, 1.6)


def palm_surface(geom: HandGeometry, layout: HandLayout, palm_texture: np.ndarray,
                 strength: float, wrist_dy: float, to_hand: np.ndarray,
                 shape: tuple[int, int]) -> np.ndarray:
    """The palm side's surface lines as a multiplicative luminance map around 1 (lines < 1),
    float32 ``shape`` (H, W) on a canvas whose pixels ``to_hand`` maps to hand-frame mm: the
    palm-print texture on the ROI (``(t / median) ** strength``), reflected and faded over the
    rest of the palm, the layout's creases outside the ROI, the fingers' flexion creases, the
    creases at the fingers' bases and two wrist creases (the second ``wrist_dy`` mm below the
    first). What a visible camera and an NIR camera both see of the palm's surface."""
    h, w = shape
    P = lambda pts: _fix(_to_px(to_hand, pts))  # noqa: E731
    mm = 1.0 / CANVAS_MM_PER_PX
    # palm-print: texture on the ROI (full contrast), reflected and faded outside
    src = np.float32([[0, 0], [TEXTURE_SIZE - 1, 0], [TEXTURE_SIZE - 1, TEXTURE_SIZE - 1]])
    dst = _to_px(to_hand, layout.roi_corners[:3]).astype(np.float32)
    A = cv2.getAffineTransform(src, dst)
    tex_mod = _texture_modulation(palm_texture, strength)
    ext = cv2.warpAffine(tex_mod, A, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    inside = cv2.warpAffine(np.ones((TEXTURE_SIZE, TEXTURE_SIZE), np.float32), A, (w, h),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    k = int(0.08 * layout.roi_side * mm) | 1
    weight = cv2.GaussianBlur(inside, (k, k), 0)
    weight = np.maximum(weight, inside)            # exact texture inside the ROI
    palm = np.zeros((h, w), np.uint8)
    cv2.fillPoly(palm, [P(layout.palm_polygon)], 255, cv2.LINE_AA, 4)
    kp = int(6 * mm) | 1
    palm = cv2.GaussianBlur(palm, (kp, kp), 0).astype(np.float32) * (0.6 / 255)
    weight = np.maximum(weight, palm)              # mirrored extension over the rest of the palm
    mod = 1 + weight * (ext - 1)
    # creases outside the ROI and finger flexion creases
    crease = np.zeros((h, w), np.float32)
    for c in layout.creases_mm:
        cv2.polylines(crease, [P(c.points)], False, float(c.depth),
                      max(1, int(round(c.width * mm))), cv2.LINE_AA, 4)
    crease *= np.clip(1 - inside, 0, 1)
    for j in layout.joints:
        if j.name.endswith(("pip", "dip", "ip")):
            n = np.array([-j.direction[1], j.direction[0]])
            for off in ((-0.6, 0.0) if j.name.endswith("pip") else (0.0,)):
                c0 = j.centre + j.direction * off * 2
                seg = np.array([c0 - n * j.width * 1.1, c0 + n * j.width * 1.1])
                cv2.polylines(crease, [P(seg)], False, 0.9, max(1, int(0.6 * mm)), cv2.LINE_AA, 4)
    for f in range(1, 5):
        base, tip = layout.finger_axes[f]
        u = (tip - base) / np.linalg.norm(tip - base)
        n = np.array([-u[1], u[0]])
        c0 = base + u * 3.0
        half = n * layout.finger_widths[f] * 0.6
        seg = np.array([c0 - half, c0 + half])
        cv2.polylines(crease, [P(seg)], False, 0.8, max(1, int(0.8 * mm)), cv2.LINE_AA, 4)
    wy = -geom.palm_height / 2
    for dy in (0.0, -wrist_dy):                               # wrist (bracelet) creases
        seg = np.array([[-geom.wrist_width * 0.45, wy + dy], [0, wy + dy - 2],
                        [geom.wrist_width * 0.45, wy + dy]])
        cv2.polylines(crease, [P(seg)], False, 0.6, max(1, int(0.7 * mm)), cv2.LINE_AA, 4)
    crease = cv2.GaussianBlur(crease, (0, 0), 0.9)
    mod = mod * (1 - 0.35 * crease)
    return mod


def _paint_canvas(geom: HandGeometry, layout: HandLayout, palm_texture: np.ndarray,
                  rng: np.random.Generator) -> _Canvas:
    """Paint the palm side of the hand in the hand frame."""
    to_hand, w, h = _canvas_frame(layout)
    P = lambda pts: _fix(_to_px(to_hand, pts))  # noqa: E731
    mm = 1.0 / CANVAS_MM_PER_PX
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [P(layout.forearm_polygon)], 255, cv2.LINE_AA, 4)
    cv2.fillPoly(mask, [P(layout.palm_polygon)], 255, cv2.LINE_AA, 4)
    for poly in layout.finger_polygons:
        cv2.fillPoly(mask, [P(poly)], 255, cv2.LINE_AA, 4)
    dist = cv2.distanceTransform((mask > 127).astype(np.uint8), cv2.DIST_L2, 3) / mm
    shade = np.sqrt(np.clip(dist * (1.0 / rng.uniform(6, 10)), 0, 1))
    shade = 0.6 + 0.4 * shade
    # thenar / hypothenar mounds and a directional light across the hand (separable)
    X = (to_hand[0, 0] * np.arange(w) + to_hand[0, 2]).astype(np.float32)
    Y = (to_hand[1, 1] * np.arange(h) + to_hand[1, 2]).astype(np.float32)
    side = 1.0 if geom.hand == "right" else -1.0
    W, H = geom.palm_width, geom.palm_height
    for cx, cy, s, a in ((0.28 * W * side, -0.22 * H, 18, 0.07),
                         (-0.3 * W * side, -0.2 * H, 16, 0.05)):
        gx = np.exp(-(X - cx) ** 2 / (2 * s * s))
        gy = np.exp(-(Y - cy) ** 2 / (2 * s * s))
        shade += a * gy[:, None] * gx[None, :]
    ang = rng.uniform(0, 2 * np.pi)
    k_l = rng.uniform(0.0, 0.25) / 120.0
    shade *= (1 + k_l * np.sin(ang) * Y)[:, None] + (k_l * np.cos(ang) * X)[None, :]
    strength = rng.uniform(0.7, 0.95)
    wrist_dy = rng.uniform(4, 7)
    mod = palm_surface(geom, layout, palm_texture, strength, wrist_dy, to_hand, (h, w))
    # skin: colour, per-presentation tint, pores
    skin = np.array(geom.skin_bgr, np.float32) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    small = rng.normal(0, 1, (h // 8 + 2, w // 8 + 2)).astype(np.float32)
    blotch = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[:h, :w]
    lum = shade * (1 + 0.025 * blotch)
    dm = mod - 1
    out = np.empty((h, w, 3), np.float32)
    for c, gexp in enumerate((1.25, 1.12, 0.85)):            # creases are redder
        out[..., c] = (skin[c] * lum) * (1 + gexp * dm)
    bgr = np.clip(out, 0, 255).astype(np.uint8)
    return _Canvas(bgr=bgr, alpha=mask, to_hand=to_hand)


# --------------------------------------------------------------------------------------------
# views


def _homography(cam: Camera, R_hand: np.ndarray, t_hand: np.ndarray) -> np.ndarray:
    """Hand-plane (x, y, 1) -> image pixel homography."""
    Rc = cam.R @ R_hand
    tc = cam.R @ t_hand + cam.t
    return cam.K @ np.column_stack([Rc[:, 0], Rc[:, 1], tc])


def _project(Hm: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.column_stack([pts, np.ones(len(pts))]) @ Hm.T
    front = p[:, 2] > 1e-6
    return p[:, :2] / np.where(front, p[:, 2], 1.0)[:, None], front


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Cluttered, out-of-focus background: colour gradient, shapes, lines."""
    h, w = size
    corners = rng.uniform(20, 230, (2, 2, 3)).astype(np.uint8)
    bg = cv2.resize(corners, (w, h), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(6, 18))):
        col = tuple(int(v) for v in rng.uniform(0, 255, 3))
        kind = rng.integers(0, 4)
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        if kind == 0:
            c2 = (int(c[0] + rng.uniform(-200, 200)), int(c[1] + rng.uniform(-150, 150)))
            cv2.rectangle(bg, c, c2, col, -1)
        elif kind == 1:
            cv2.ellipse(bg, c, (int(rng.uniform(10, 120)), int(rng.uniform(10, 90))),
                        float(rng.uniform(0, 180)), 0, 360, col, -1, cv2.LINE_AA)
        elif kind == 2:
            c2 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            cv2.line(bg, c, c2, col, int(rng.integers(1, 12)), cv2.LINE_AA)
        else:
            pts = np.array(c) + rng.uniform(-120, 120, (int(rng.integers(3, 7)), 2))
            pts = pts.astype(np.int32)
            cv2.fillPoly(bg, [pts], col, cv2.LINE_AA)
    sig = rng.uniform(1.0, 4.0)
    small = cv2.resize(bg, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sig / 4 + 0.3)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _tone_lut(rng: np.random.Generator) -> np.ndarray:
    """Per-view exposure, white balance and gamma as a (256, 1, 3) uint8 LUT."""
    x = np.arange(256, dtype=np.float32) / 255.0
    gain = rng.uniform(0.75, 1.25)
    wb = rng.uniform(0.9, 1.1, 3)
    gamma = rng.uniform(0.8, 1.25)
    lut = np.stack([np.clip(255 * (np.clip(x * gain * wb[c], 0, 1) ** gamma), 0, 255)
                    for c in range(3)], axis=-1)
    return lut.astype(np.uint8).reshape(256, 1, 3)


def _noise_tile(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Sensor noise (int16), a random 120x160 tile repeated over the frame (cheap, invisible)."""
    h, w = size
    tile = rng.normal(0, rng.uniform(1.5, 5.0), (120, 160, 3)).astype(np.int16)
    reps = (-(-h // 120), -(-w // 160), 1)
    return np.tile(tile, reps)[:h, :w]


def _motion_kernel(dx: float, dy: float) -> np.ndarray | None:
    L = float(np.hypot(dx, dy))
    if L < 1.0:
        return None
    n = int(np.ceil(L)) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    cv2.line(k, (int(round(c - dx / 2)), int(round(c - dy / 2))),
             (int(round(c + dx / 2)), int(round(c + dy / 2))), 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def _render_view(canvas: _Canvas, Hm: np.ndarray, background: np.ndarray,
                 rng: np.random.Generator, motion: tuple[float, float] | None,
                 lut: np.ndarray | None = None, alpha_out: list | None = None) -> np.ndarray:
    """One camera image of the canvas; with ``alpha_out`` the hand's coverage (float32 in
    [0, 1], before blur and noise) is appended to it: the segmentation ground truth."""
    h, w = background.shape[:2]
    Ht = Hm @ canvas.to_hand
    hand = cv2.warpPerspective(canvas.bgr, Ht, (w, h), flags=cv2.INTER_LINEAR)
    a = cv2.warpPerspective(canvas.alpha, Ht, (w, h), flags=cv2.INTER_LINEAR)
    a = a.astype(np.float32) / 255.0
    if alpha_out is not None:
        alpha_out.append(a)
    img = cv2.blendLinear(hand, background, a, 1.0 - a)
    img = cv2.LUT(img, lut if lut is not None else _tone_lut(rng))
    sig = rng.uniform(0.3, 1.2)
    img = cv2.GaussianBlur(img, (0, 0), sig)
    if motion is not None:
        k = _motion_kernel(*motion)
        if k is not None:
            img = cv2.filter2D(img, -1, k)
    noisy = img.astype(np.int16) + _noise_tile(rng, (h, w))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _keypoints(layout: HandLayout) -> np.ndarray:
    return np.concatenate([layout.valley_array(), layout.palm_centre[None], layout.roi_corners])


def _meta(geom: HandGeometry, layout: HandLayout, cam: Camera, R_hand: np.ndarray,
          t_hand: np.ndarray, view: int, mode: str, size: tuple[int, int]) -> dict:
    Hm = _homography(cam, R_hand, t_hand)
    pts, front = _project(Hm, _keypoints(layout))
    h, w = size
    vis = front & (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    r = lambda a: [[round(float(x), 3) for x in p] for p in a]  # noqa: E731
    return {
        "hand": geom.hand, "view": int(view), "mode": mode, "size": [int(h), int(w)],
        "valley_names": list(VALLEY_NAMES),
        "valleys": r(pts[:4]), "palm_centre": r(pts[4:5])[0], "roi_corners": r(pts[5:9]),
        "visible": {"valleys": [bool(v) for v in vis[:4]], "palm_centre": bool(vis[4]),
                    "roi_corners": [bool(v) for v in vis[5:9]]},
        "camera": cam.to_dict(),
        "hand_pose": {"R": R_hand.tolist(), "t": t_hand.tolist()},
        "roi_side_mm": round(float(layout.roi_side), 3),
        "hand_frame_mm": {"valleys": r(layout.valley_array()),
                          "palm_centre": r(layout.palm_centre[None])[0],
                          "roi_corners": r(layout.roi_corners)},
        "homography": Hm.tolist(),
    }


def render_hand_views(geom: HandGeometry, palm_texture: np.ndarray, rng: np.random.Generator,
                      views: int = 3, mode: str = "multi_camera",
                      size: tuple[int, int] = (480, 640), *, rig: list[Camera] | None = None,
                      pose: HandPose | None = None, background: np.ndarray | None = None,
                      alpha_out: list | None = None) -> list[tuple[np.ndarray, dict]]:
    """Render ``views`` BGR images (``size`` = (H, W)) of one presentation of ``geom`` with
    ``palm_texture`` (128x128 float32 in [0, 1]) on its palm ROI, each with a JSON-serialisable
    keypoint dict (see module doc).

    ``rig``: the cameras for ``multi_camera`` (default: :func:`sample_rig` from ``rng``; in
    ``motion`` mode its first camera is used); ``pose``: the hand pose (default: drawn);
    ``background``: an (H, W, 3) uint8 image to composite on instead of synthetic clutter;
    ``alpha_out``: a list that receives each view's hand coverage (float32 (H, W) in [0, 1]).
    """
    if mode not in ("multi_camera", "motion"):
        raise ValueError(f"mode must be 'multi_camera' or 'motion', not {mode!r}")
    tex = np.asarray(palm_texture, np.float32)
    if tex.shape != (TEXTURE_SIZE, TEXTURE_SIZE):
        tex = cv2.resize(tex, (TEXTURE_SIZE, TEXTURE_SIZE), interpolation=cv2.INTER_AREA)
    pose = pose or perturb_pose(rng, 0.8)
    layout = hand_layout(geom, pose)
    canvas = _paint_canvas(geom, layout, tex, rng)
    depth = rng.uniform(-15, 15)
    out: list[tuple[np.ndarray, dict]] = []
    if mode == "multi_camera":
        cams = rig if rig is not None else sample_rig(rng, views, size)
        if len(cams) < views:
            raise ValueError(f"rig has {len(cams)} cameras, {views} views asked")
        R_hand = rotation_3d(pose)
        t_hand = np.array([pose.translation[0], pose.translation[1], depth])
        for k in range(views):
            bg = background if background is not None else _background(rng, size)
            Hm = _homography(cams[k], R_hand, t_hand)
            img = _render_view(canvas, Hm, bg, rng, None, alpha_out=alpha_out)
            out.append((img, _meta(geom, layout, cams[k], R_hand, t_hand, k, mode, size)))
        return out
    cam = (rig if rig is not None else sample_rig(rng, 1, size))[0]
    bg = background if background is not None else _background(rng, size)
    ang = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(2.0, 7.0)
    vel = HandPose(rotation=float(rng.uniform(-2, 2)),
                   translation=(float(speed * np.cos(ang)), float(speed * np.sin(ang))),
                   tilt=(float(rng.uniform(-1.5, 1.5)), float(rng.uniform(-1.5, 1.5))))
    vz = rng.uniform(-6, 2)
    shutter = rng.uniform(0.1, 0.4)
    lut = _tone_lut(rng)                     # one camera, one exposure setting per burst
    cur = pose
    prev_centre = None
    for k in range(views):
        if k:
            cur = step_pose(cur, vel, rng)
        R_hand = rotation_3d(cur)
        t_hand = np.array([cur.translation[0], cur.translation[1], depth + vz * k])
        Hm = _homography(cam, R_hand, t_hand)
        centre = _project(Hm, layout.palm_centre[None])[0][0]
        if prev_centre is None:
            nxt = step_pose(cur, vel, np.random.default_rng(0), 0.0)
            Hn = _homography(cam, rotation_3d(nxt), np.array([nxt.translation[0],
                             nxt.translation[1], depth + vz]))
            prev_centre = 2 * centre - _project(Hn, layout.palm_centre[None])[0][0]
        blur = tuple((centre - prev_centre) * shutter)
        prev_centre = centre
        img = _render_view(canvas, Hm, bg, rng, blur, lut, alpha_out)
        out.append((img, _meta(geom, layout, cam, R_hand, t_hand, k, mode, size)))
    return out
