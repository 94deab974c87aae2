"""Per-identity hand geometry and per-presentation pose for the synthetic data engine.

Everything here is pure numpy and lives in the *hand frame*: millimetres, origin at the centre of
the palm rectangle, +y from the wrist toward the fingers, +x toward the thumb for a right hand
(the palm seen from the palm side, i.e. as a camera facing the palm sees it).  A left hand is the
mirror image (+x toward the little finger), so a left palm shows its thumb on the image left.

* :class:`HandGeometry` -- what is fixed for one identity (one palm): palm and finger sizes,
  bone lengths and widths, joint spaces and joint soft tissue, carpal layout, vein network,
  principal creases, skin tone.
* :class:`HandPose` -- what changes between presentations: finger spread and flexion, in-plane
  rotation and translation, tilt of the palm plane.
* :func:`hand_layout` -- the 2-D outline, keypoints and skeleton of a geometry in a pose, used
  by both the visible renderer (``hands.py``) and the transmission sensor (``sensor.py``).

Modules: this one draws geometries and poses; the types and the mean anatomy live in
:mod:`device.synth.hand_anatomy`, the layout in :mod:`device.synth.hand_layout`. Their public
names are re-exported here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from device.synth.hand_anatomy import (_BONE_WIDTH, _CARPALS, _FINGER_ANGLE,  # noqa: F401
                                       _FINGER_WIDTH, _METACARPAL, _PHALANGES, _VALLEY_DROP,
                                       FINGERS, VALLEY_NAMES, Bone, Ellipse, HandGeometry,
                                       HandLayout, HandPose, Joint, Polyline)
from device.synth.hand_layout import bone_lengths, hand_layout  # noqa: F401


# --------------------------------------------------------------------------------------------
# sampling


def _skin_bgr(tone: float) -> tuple[float, float, float]:
    """Palm-side skin colour (BGR, 0..255) for a tone in [0, 1] (0 light, 1 dark)."""
    light = np.array([172.0, 190.0, 236.0])
    mid = np.array([118.0, 146.0, 205.0])
    dark = np.array([72.0, 98.0, 150.0])
    c = light + (mid - light) * min(tone, 0.5) * 2 if tone <= 0.5 else \
        mid + (dark - mid) * (tone - 0.5) * 2
    return tuple(float(v) for v in c)


def _bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2 = (np.asarray(p, np.float64) for p in (p0, p1, p2))
    return ((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2).astype(np.float32)


def _sample_veins(rng: np.random.Generator) -> tuple[Polyline, ...]:
    """A palmar venous network: trunks from the wrist, branches, and a few anastomoses."""
    veins: list[Polyline] = []
    trunks: list[np.ndarray] = []
    n_trunks = int(rng.integers(3, 6))
    xs = np.sort(rng.uniform(-0.8, 0.8, n_trunks))
    for x0 in xs:
        pts = [(x0, -1.35)]
        heading = np.deg2rad(90 + rng.normal(0, 20))
        y_end = rng.uniform(0.55, 1.05)
        while pts[-1][1] < y_end and abs(pts[-1][0]) < 1.05 and len(pts) < 100:
            heading += np.deg2rad(rng.normal(0, 16)) + 0.1 * (np.pi / 2 - heading)
            x, y = pts[-1]
            pts.append((x + 0.045 * np.cos(heading), y + 0.045 * np.sin(heading)))
            if rng.random() < 0.09 and len(pts) > 3:
                bh = heading + np.deg2rad(rng.choice([-1, 1]) * rng.uniform(30, 70))
                bp = [pts[-1]]
                for _ in range(int(rng.integers(5, 18))):
                    bh += np.deg2rad(rng.normal(0, 16))
                    bp.append((bp[-1][0] + 0.045 * np.cos(bh), bp[-1][1] + 0.045 * np.sin(bh)))
                veins.append(Polyline(np.asarray(bp, np.float32), float(rng.uniform(1.0, 2.0)),
                                      float(rng.uniform(1.0, 2.5))))
        arr = np.asarray(pts, np.float32)
        trunks.append(arr)
        veins.append(Polyline(arr, float(rng.uniform(2.2, 3.5)), float(rng.uniform(1.8, 3.8))))
    for _ in range(int(rng.integers(2, 5))):
        if len(trunks) < 2:
            break
        i = int(rng.integers(0, len(trunks) - 1))
        a = trunks[i][int(rng.integers(0, len(trunks[i])))]
        other = trunks[i + 1]
        b = other[int(np.argmin(np.abs(other[:, 1] - a[1] - rng.normal(0, 0.15))))]
        mid = (a + b) / 2 + rng.normal(0, 0.12, 2)
        veins.append(Polyline(_bezier(a, mid, b, 16), float(rng.uniform(1.0, 1.8)),
                              float(rng.uniform(1.2, 2.8))))
    return tuple(veins)


def _sample_creases(rng: np.random.Generator) -> tuple[Polyline, ...]:
    """Principal lines (heart, head, life) and a few minor creases."""
    j = lambda s=0.08: rng.normal(0, s, 2)  # noqa: E731 - tiny local helper
    heart = _bezier((-1.02, 0.45) + j(), (-0.2, 0.32) + j(0.1), (0.55, 0.78) + j())
    head = _bezier((0.9, 0.42) + j(0.05), (0.05, 0.2) + j(0.1), (-0.8, -0.1) + j(0.12))
    life = _bezier((0.9, 0.38) + j(0.05), (0.2, -0.1) + j(0.1), (0.4, -1.0) + j(0.08))
    out = [Polyline(heart, float(rng.uniform(0.8, 1.3)), float(rng.uniform(0.6, 1.0))),
           Polyline(head, float(rng.uniform(0.8, 1.3)), float(rng.uniform(0.6, 1.0))),
           Polyline(life, float(rng.uniform(0.8, 1.3)), float(rng.uniform(0.6, 1.0)))]
    for _ in range(int(rng.integers(3, 8))):
        c = rng.uniform([-0.7, -0.7], [0.7, 0.7])
        ang = rng.uniform(0, np.pi)
        d = np.array([np.cos(ang), np.sin(ang)]) * rng.uniform(0.15, 0.4)
        out.append(Polyline(_bezier(c - d, c + rng.normal(0, 0.08, 2), c + d, 10),
                            float(rng.uniform(0.4, 0.8)), float(rng.uniform(0.2, 0.5))))
    return tuple(out)


def sample_hand_geometry(rng: np.random.Generator, hand: str = "left",
                         veins: bool = True) -> HandGeometry:
    """Draw one identity's hand.  Sizes span small to large adult hands (size factor ~0.8-1.2).

    All per-identity randomness (including the vein network and creases) comes from ``rng``;
    ``veins=False`` skips generating the vein and crease polylines (a skeleton-only template).
    """
    if hand not in ("left", "right"):
        raise ValueError(f"hand must be 'left' or 'right', not {hand!r}")
    s = float(np.clip(rng.normal(1.0, 0.07), 0.8, 1.2))
    jit = lambda base, rel: tuple(float(b * s * (1 + rng.normal(0, rel)))  # noqa: E731
                                  for b in base)
    palm_w = 84.0 * s * (1 + rng.normal(0, 0.04))
    palm_h = 104.0 * s * (1 + rng.normal(0, 0.04))
    meta = jit(_METACARPAL, 0.03)
    phal = tuple(tuple(float(v * s * (1 + rng.normal(0, 0.035))) for v in p) for p in _PHALANGES)
    phal = tuple((p[0], 0.0 if i == 0 else p[1], p[2]) for i, p in enumerate(phal))
    bw_f = 1 + rng.normal(0, 0.06)
    bone_w = tuple(tuple(float(v * s * bw_f * (1 + rng.normal(0, 0.03))) for v in b)
                   for b in _BONE_WIDTH)
    spaces = tuple(tuple(float(np.clip(rng.normal(1.7, 0.3), 0.9, 2.6) * s) for _ in range(3))
                   for _ in range(5))
    tissue = tuple(tuple(float(np.clip(rng.normal(1.0, 0.15), 0.6, 1.5)) for _ in range(3))
                   for _ in range(5))
    carp = tuple((float(rng.normal(0, 1.2)), float(rng.normal(0, 1.2)),
                  float(np.clip(rng.normal(1, 0.08), 0.8, 1.2)),
                  float(np.clip(rng.normal(1, 0.08), 0.8, 1.2)), float(rng.normal(0, 8)))
                 for _ in _CARPALS)
    tone = float(np.clip(rng.beta(2.0, 2.2), 0.0, 1.0))
    vein_seed = int(rng.integers(0, 2**31 - 1))
    vrng = np.random.default_rng(vein_seed)
    return HandGeometry(
        hand=hand, size=s, palm_width=float(palm_w), palm_height=float(palm_h),
        wrist_width=float(palm_w * rng.uniform(0.72, 0.8)),
        palm_thickness=float(rng.uniform(22, 30) * s),
        valley_drop=tuple(float(v * s + rng.normal(0, 1.5)) for v in _VALLEY_DROP),
        finger_widths=jit(_FINGER_WIDTH, 0.04),
        finger_angles=tuple(float(a + rng.normal(0, 3)) for a in _FINGER_ANGLE),
        metacarpal_lengths=meta, phalanx_lengths=phal, bone_widths=bone_w,
        joint_spaces=spaces, joint_tissue=tissue,
        mcp_depth=float(rng.uniform(18, 23) * s), tip_pad=float(rng.uniform(3, 5) * s),
        thumb_base=(float(rng.normal(0.29, 0.02)), float(rng.normal(14, 2) * s)),
        cortex_fraction=float(rng.uniform(0.2, 0.34)),
        bone_density=float(rng.uniform(0.85, 1.15)),
        tissue_density=float(rng.uniform(0.92, 1.08)),
        carpals=carp, sesamoids=bool(rng.random() < 0.8),
        vein_seed=vein_seed, veins=_sample_veins(vrng) if veins else (),
        creases=_sample_creases(vrng) if veins else (),
        skin_tone=tone, skin_bgr=_skin_bgr(tone),
    )


# --------------------------------------------------------------------------------------------
# poses


def perturb_pose(rng: np.random.Generator, strength: float = 1.0,
                 base: HandPose | None = None) -> HandPose:
    """A presentation pose: finger spread ±6°, flexion 0-15°, rotation ±12°, shift ±10 mm,
    tilt ±10°, all scaled by ``strength`` and added to ``base`` (default: neutral)."""
    base = base or HandPose()
    k = float(strength)
    return HandPose(
        spread=tuple(float(b + rng.normal(0, 3.5 * k)) for b in base.spread),
        flexion=tuple(float(np.clip(b + abs(rng.normal(0, 7 * k)), 0, 35)) for b in base.flexion),
        rotation=float(base.rotation + rng.uniform(-12, 12) * k),
        translation=(float(base.translation[0] + rng.uniform(-10, 10) * k),
                     float(base.translation[1] + rng.uniform(-10, 10) * k)),
        tilt=(float(base.tilt[0] + rng.uniform(-10, 10) * k),
              float(base.tilt[1] + rng.uniform(-10, 10) * k)),
    )


def step_pose(pose: HandPose, velocity: HandPose, rng: np.random.Generator,
              jitter: float = 0.2) -> HandPose:
    """Advance ``pose`` by one frame of ``velocity`` (rotation, translation and tilt are used as
    per-frame increments) with a little random jitter; fingers stay as they are."""
    r = lambda s: float(rng.normal(0, s * jitter))  # noqa: E731
    return replace(
        pose,
        rotation=pose.rotation + velocity.rotation + r(1.0),
        translation=(pose.translation[0] + velocity.translation[0] + r(2.0),
                     pose.translation[1] + velocity.translation[1] + r(2.0)),
        tilt=(pose.tilt[0] + velocity.tilt[0] + r(1.0), pose.tilt[1] + velocity.tilt[1] + r(1.0)),
    )


def placement_matrix(pose: HandPose) -> np.ndarray:
    """2x3 similarity (rotation then translation) placing hand-frame points in the palm plane."""
    a = np.deg2rad(pose.rotation)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, pose.translation[0]], [s, c, pose.translation[1]]])


def rotation_3d(pose: HandPose) -> np.ndarray:
    """3x3 rotation of the hand plane: in-plane rotation, then tilt about x, then about y."""
    rz = np.deg2rad(pose.rotation)
    rx, ry = np.deg2rad(pose.tilt[0]), np.deg2rad(pose.tilt[1])
    Rz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    Ry = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    return Ry @ Rx @ Rz
