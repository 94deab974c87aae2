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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "little")
"""Finger order used by every per-finger tuple in this module."""

VALLEY_NAMES: tuple[str, ...] = ("index_middle", "middle_ring", "ring_little", "thumb_index")
"""Order of the four finger valleys in keypoint lists."""

# Adult mean anatomy in mm (thumb, index, middle, ring, little).  Thumb has no middle phalanx.
_METACARPAL = (46.0, 68.0, 65.0, 58.0, 54.0)
_PHALANGES = ((32.0, 0.0, 23.0), (40.0, 23.0, 17.0), (45.0, 28.0, 19.0),
              (42.0, 27.0, 19.0), (33.0, 19.0, 17.0))
_FINGER_WIDTH = (21.0, 18.5, 18.5, 17.5, 15.5)           # width of the finger near its base
_FINGER_ANGLE = (42.0, 6.0, 0.0, -5.0, -12.0)           # rest spread, deg toward the thumb (+)
_BONE_WIDTH = ((10.0, 9.0, 0.0, 7.0), (9.0, 8.5, 7.0, 5.5), (9.0, 9.0, 7.5, 5.5),
               (8.0, 8.0, 7.0, 5.5), (7.5, 7.0, 6.0, 5.0))   # metacarpal, P1, P2, P3 diameters
_VALLEY_DROP = (16.0, 4.0, 0.0, 2.5, 11.0)               # e0..e4 below the finger-base line, mm
# Carpal bones: name, centre (x as a fraction of palm width, y mm above the wrist crease),
# semi-axes mm, angle deg.  Canonical right hand.
_CARPALS = (("scaphoid", 0.20, 4.0, 7.0, 4.5, 40.0), ("lunate", 0.02, 3.0, 5.0, 4.5, 0.0),
            ("triquetrum", -0.17, 5.0, 4.5, 4.0, -20.0), ("pisiform", -0.22, 8.0, 3.2, 3.0, 0.0),
            ("trapezium", 0.27, 15.0, 5.0, 4.5, 30.0), ("trapezoid", 0.14, 18.0, 3.8, 4.2, 10.0),
            ("capitate", 0.02, 18.0, 5.0, 7.5, 0.0), ("hamate", -0.15, 17.0, 4.8, 6.5, -10.0))


@dataclass(frozen=True, eq=False)
class Polyline:
    """A curve on the palm in palm-normalised coordinates of the canonical right hand.

    ``points`` is (N, 2) float32 with x in [-1, 1] from the ulnar to the radial palm edge and
    y in [-1, 1] from the wrist crease to the finger-base line (it may reach a little beyond).
    ``width`` and ``depth`` are millimetres (depth below the skin for veins; for creases
    ``depth`` is a relative darkness in [0, 1]).
    """

    points: np.ndarray
    width: float
    depth: float


@dataclass(frozen=True, eq=False)
class HandGeometry:
    """Everything that is fixed for one identity (one palm).  Lengths in mm, angles in degrees.

    Per-finger tuples follow :data:`FINGERS`.  ``phalanx_lengths[f]`` is (proximal, middle,
    distal) with middle = 0 for the thumb; ``bone_widths[f]`` is the shaft diameter of
    (metacarpal, proximal, middle, distal); ``joint_spaces[f]`` / ``joint_tissue[f]`` are the
    cartilage gap (mm) and the joint soft-tissue size factor of (MCP, PIP, DIP) -- for the thumb
    (MCP, IP, unused).  ``carpals`` holds one (dx, dy, scale_a, scale_b, dangle) jitter per
    carpal bone of the template.  ``veins`` and ``creases`` are explicit polylines generated
    from ``vein_seed``.
    """

    hand: str
    size: float
    palm_width: float
    palm_height: float
    wrist_width: float
    palm_thickness: float
    valley_drop: tuple[float, ...]
    finger_widths: tuple[float, ...]
    finger_angles: tuple[float, ...]
    metacarpal_lengths: tuple[float, ...]
    phalanx_lengths: tuple[tuple[float, float, float], ...]
    bone_widths: tuple[tuple[float, float, float, float], ...]
    joint_spaces: tuple[tuple[float, float, float], ...]
    joint_tissue: tuple[tuple[float, float, float], ...]
    mcp_depth: float
    tip_pad: float
    thumb_base: tuple[float, float]
    cortex_fraction: float
    bone_density: float
    tissue_density: float
    carpals: tuple[tuple[float, float, float, float, float], ...]
    sesamoids: bool
    vein_seed: int
    veins: tuple[Polyline, ...]
    creases: tuple[Polyline, ...]
    skin_tone: float
    skin_bgr: tuple[float, float, float]

    @property
    def finger_lengths(self) -> tuple[float, ...]:
        """Visible palmar length of each finger from its base (web line) to the tip, mm."""
        out = []
        for f in range(5):
            bones = (sum(self.phalanx_lengths[f]) + sum(self.joint_spaces[f][1:3 if f else 2])
                     + self.joint_spaces[f][0] / 2 + self.tip_pad)
            out.append(bones if f == 0 else bones - self.mcp_depth)
        return tuple(out)

    def to_dict(self) -> dict:
        """JSON-serialisable summary (polylines as lists)."""
        d = asdict(self)
        d["veins"] = [{"points": v.points.tolist(), "width": v.width, "depth": v.depth}
                      for v in self.veins]
        d["creases"] = [{"points": c.points.tolist(), "width": c.width, "depth": c.depth}
                        for c in self.creases]
        d["finger_lengths"] = list(self.finger_lengths)
        return d


@dataclass(frozen=True)
class HandPose:
    """What changes between presentations of the same hand.

    ``spread`` (deg, per finger, + toward the thumb) and ``flexion`` (deg, per finger,
    foreshortens the phalanges in the palm plane) deform the hand; ``rotation`` (deg, in-plane,
    counter-clockwise in the hand frame), ``translation`` (mm in the palm plane) and ``tilt``
    (deg about the hand x and y axes) place it.
    """

    spread: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    flexion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    rotation: float = 0.0
    translation: tuple[float, float] = (0.0, 0.0)
    tilt: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True, eq=False)
class Bone:
    """A long bone as a segment from ``a`` (base) to ``b`` (head) with a shaft diameter."""

    name: str
    a: np.ndarray
    b: np.ndarray
    width: float
    flare_base: float = 0.35
    flare_head: float = 0.3


@dataclass(frozen=True, eq=False)
class Joint:
    """A joint: centre, unit axis direction, adjacent bone width, cartilage gap, tissue factor."""

    name: str
    centre: np.ndarray
    direction: np.ndarray
    width: float
    gap: float
    tissue: float


@dataclass(frozen=True, eq=False)
class Ellipse:
    """An ellipsoidal small bone seen from above: centre, semi-axes (mm), angle (deg)."""

    name: str
    centre: np.ndarray
    axes: tuple[float, float]
    angle: float


@dataclass(frozen=True, eq=False)
class HandLayout:
    """2-D outline, keypoints and skeleton of a hand in a pose, in the hand frame (mm).

    Deformations (spread, flexion) are applied; placement (rotation, translation, tilt) is
    not -- renderers apply it.  ``finger_polygons`` and ``finger_axes`` follow
    :data:`FINGERS`.  ``roi_corners`` are the palm-ROI square's corners in the order
    top-left, top-right, bottom-right, bottom-left of the upright palm view (fingers up).
    """

    hand: str
    palm_polygon: np.ndarray
    forearm_polygon: np.ndarray
    finger_polygons: tuple[np.ndarray, ...]
    finger_axes: tuple[tuple[np.ndarray, np.ndarray], ...]
    finger_widths: tuple[float, ...]
    valleys: dict[str, np.ndarray]
    palm_centre: np.ndarray
    roi_corners: np.ndarray
    roi_side: float
    bones: tuple[Bone, ...]
    joints: tuple[Joint, ...]
    carpals: tuple[Ellipse, ...]
    sesamoids: tuple[Ellipse, ...]
    creases_mm: tuple[Polyline, ...] = field(default=())
    veins_mm: tuple[Polyline, ...] = field(default=())

    def valley_array(self) -> np.ndarray:
        """The four valleys as (4, 2) in :data:`VALLEY_NAMES` order."""
        return np.stack([self.valleys[n] for n in VALLEY_NAMES])


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


# --------------------------------------------------------------------------------------------
# layout


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (math.hypot(float(v[0]), float(v[1])) + 1e-12)


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    """Rotate a 2-vector toward +x (the thumb side of a right hand) by ``deg``."""
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] + s * v[1], -s * v[0] + c * v[1]])


def _tapered(base_l: np.ndarray, base_r: np.ndarray, tip: np.ndarray, u: np.ndarray,
             tip_w: float, n_arc: int = 9) -> np.ndarray:
    """Finger outline: ``base_r`` (on the right-hand normal side of ``u``), a round tip of width
    ``tip_w`` ending at ``tip``, then ``base_l``."""
    n = np.array([u[1], -u[0]])            # right-hand normal of the axis
    r = tip_w / 2
    centre = tip - u * r
    ang0 = np.arctan2(n[1], n[0])
    arc = [centre + r * np.array([np.cos(ang0 + t), np.sin(ang0 + t)])  # n -> u -> -n
           for t in np.linspace(0, np.pi, n_arc)]
    return np.array([base_r, *arc, base_l], np.float64)


def _smooth_polygon(poly: np.ndarray, fixed: set[int], iterations: int = 2) -> np.ndarray:
    """Chaikin corner cutting of a closed polygon, keeping the ``fixed`` vertices (valleys,
    finger-base corners) exactly where they are."""
    pts = [np.asarray(p, np.float64) for p in poly]
    keep = [i in fixed for i in range(len(pts))]
    for _ in range(iterations):
        out, out_keep = [], []
        n = len(pts)
        for i in range(n):
            p, prev, nxt = pts[i], pts[i - 1], pts[(i + 1) % n]
            if keep[i]:
                out.append(p)
                out_keep.append(True)
            else:
                out += [0.75 * p + 0.25 * prev, 0.75 * p + 0.25 * nxt]
                out_keep += [False, False]
        pts, keep = out, out_keep
    return np.array(pts)


def _finger_bones(f: int, geom: HandGeometry, start: np.ndarray, u: np.ndarray,
                  flex: float) -> tuple[list[Bone], list[Joint], np.ndarray]:
    """Phalanges and inter-phalangeal joints of finger ``f`` from the MCP joint centre ``start``
    along ``u``; flexion foreshortens each segment in the palm plane.  Returns the fingertip."""
    names = ("proximal", "middle", "distal")
    seg = (0, 2) if f == 0 else (0, 1, 2)
    jnames = ("ip",) if f == 0 else ("pip", "dip")
    bones: list[Bone] = []
    joints: list[Joint] = []
    pos = start.copy()
    cum = 0.0
    for k, idx in enumerate(seg):
        cum += flex * (1.0 if k == 0 else 0.8)
        c = float(np.cos(np.deg2rad(min(cum, 75.0))))
        a = pos + u * geom.joint_spaces[f][k] * c / 2
        b = a + u * geom.phalanx_lengths[f][idx] * c
        w = geom.bone_widths[f][idx + 1]
        bones.append(Bone(f"{FINGERS[f]}_{names[idx]}", a, b, w, 0.35,
                          0.15 if idx == 2 else 0.3))
        if k + 1 < len(seg):
            g = geom.joint_spaces[f][k + 1] * c
            pos = b + u * g / 2
            joints.append(Joint(f"{FINGERS[f]}_{jnames[k]}", pos, u, w, g,
                                geom.joint_tissue[f][k + 1]))
    tip = bones[-1].b + u * geom.tip_pad
    return bones, joints, tip


def hand_layout(geom: HandGeometry, pose: HandPose | None = None) -> HandLayout:
    """The 2-D hand (outline, valleys, ROI, skeleton, veins, creases) in the hand frame, mm."""
    pose = pose or HandPose()
    W, H = geom.palm_width, geom.palm_height
    top = H / 2
    # finger-base corners e0 (ulnar edge) .. e4 (radial edge), canonical right hand
    fw = np.array(geom.finger_widths[1:][::-1])            # little, ring, middle, index
    xs = -W / 2 + np.concatenate([[0.0], np.cumsum(fw / fw.sum() * W)])
    xs[0] += 0.02 * W
    xs[-1] -= 0.03 * W
    e = np.stack([xs, top - np.array(geom.valley_drop)], axis=1)
    bones: list[Bone] = []
    joints: list[Joint] = []
    polys: dict[int, np.ndarray] = {}
    axes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    widths: dict[int, float] = {}
    focus = np.array([0.05 * W, -H / 2 - 40.0 * geom.size])
    # finger spread, kept fanned out (adjacent fingers diverge by at least 2 deg)
    ang = [geom.finger_angles[f] + pose.spread[f] for f in range(5)]
    ang[1] = max(ang[1], ang[2] + 2.0)
    ang[3] = min(ang[3], ang[2] - 2.0)
    ang[4] = min(ang[4], ang[3] - 2.0)
    web = 2.6 * geom.size                                   # width of the web between fingers
    for k in range(4):                                      # k=0 little ... 3 index
        f = 4 - k
        bl, br = e[k], e[k + 1]
        base = (bl + br) / 2
        t = _unit(br - bl)
        u0 = np.array([-t[1], t[0]])                        # perpendicular, pointing up
        u = _unit(_rot(u0, ang[f]))
        # finger outline starts half a web away from inner valleys and a little above them
        if k > 0:
            bl = bl + t * web / 2 + u0 * web * 0.3
        if k < 3:
            br = br - t * web / 2 + u0 * web * 0.3
        mcp = base - u0 * geom.mcp_depth
        ph, jt, tip = _finger_bones(f, geom, mcp, u, pose.flexion[f])
        mc_dir = _unit(mcp - focus)
        head = mcp - mc_dir * geom.joint_spaces[f][0] / 2
        bones.append(Bone(f"{FINGERS[f]}_metacarpal", head - mc_dir * geom.metacarpal_lengths[f],
                          head, geom.bone_widths[f][0], 0.3, 0.35))
        joints.append(Joint(f"{FINGERS[f]}_mcp", mcp, u, geom.bone_widths[f][1],
                            geom.joint_spaces[f][0], geom.joint_tissue[f][0]))
        bones += ph
        joints += jt
        tip_w = geom.finger_widths[f] * 0.82
        polys[f] = _tapered(bl, br, tip, u, tip_w)
        axes[f] = (base, tip)
        widths[f] = float(np.linalg.norm(e[k + 1] - e[k]))
    # thumb
    cmc = np.array([geom.thumb_base[0] * W, -H / 2 + geom.thumb_base[1]])
    ut = _unit(_rot(np.array([0.0, 1.0]), ang[0]))
    nt = np.array([-ut[1], ut[0]])                          # toward the index side
    mc1_a = cmc + ut * geom.joint_spaces[0][2] / 2
    mc1_b = mc1_a + ut * geom.metacarpal_lengths[0]
    bones.append(Bone("thumb_metacarpal", mc1_a, mc1_b, geom.bone_widths[0][0], 0.3, 0.35))
    mcp1 = mc1_b + ut * geom.joint_spaces[0][0] / 2
    joints.append(Joint("thumb_mcp", mcp1, ut, geom.bone_widths[0][1], geom.joint_spaces[0][0],
                        geom.joint_tissue[0][0]))
    ph, jt, ttip = _finger_bones(0, geom, mcp1, ut, pose.flexion[0])
    bones += ph
    joints += jt
    wt = geom.finger_widths[0]
    s_web = 0.2 * geom.phalanx_lengths[0][0]
    v_t = mcp1 + ut * s_web + nt * wt * 0.5
    th0 = cmc + ut * geom.metacarpal_lengths[0] * 0.25
    outer = mcp1 + ut * s_web - nt * wt * 0.5
    arc = _tapered(v_t, outer, ttip, ut, wt * 0.85)[1:-1]   # from the outer side over the tip
    v_web = v_t + ut * web * 0.8 - nt * web * 0.15          # thumb edge leaves the web here
    thumb_poly = np.array([th0 + nt * wt * 0.75, v_t - ut * web * 0.6 - nt * web * 0.3, v_web,
                           *arc[::-1], outer, th0 - nt * wt * 0.85])
    polys[0] = thumb_poly
    axes[0] = (mcp1, ttip)
    widths[0] = float(wt)
    # palm outline (counter-clockwise from the ulnar wrist corner)
    ww = geom.wrist_width
    palm = np.array([
        [-ww / 2, -H / 2], [-W / 2 - 1.5, -0.15 * H], [-W / 2, 0.3 * H], *e[:4],
        e[4], v_t, [W / 2 + 4.0, v_t[1] - 0.15 * H], [ww / 2 + 3.0, -H / 2]])
    palm = _smooth_polygon(palm, fixed={3, 4, 5, 6, 7, 8}, iterations=2)
    forearm = np.array([[-ww / 2, -H / 2 + 8], [ww / 2 + 3, -H / 2 + 8],
                        [ww / 2 * 1.06 + 3, -H / 2 - 90], [-ww / 2 * 1.06, -H / 2 - 90]])
    # carpals, forearm bones, sesamoids
    carpals = []
    for (name, fx, fy, a, b, ang), (dx, dy, sa, sb, da) in zip(_CARPALS, geom.carpals):
        carpals.append(Ellipse(name, np.array([fx * W + dx, -H / 2 + fy * geom.size + dy]),
                               (1.2 * a * geom.size * sa, 1.2 * b * geom.size * sb), ang + da))
    bones.append(Bone("radius", np.array([0.22 * W, -H / 2 - 120]),
                      np.array([0.13 * W, -H / 2 - 4 * geom.size]), 15.0 * geom.size, 0.0, 0.55))
    bones.append(Bone("ulna", np.array([-0.27 * W, -H / 2 - 120]),
                      np.array([-0.2 * W, -H / 2 - 7 * geom.size]), 10.0 * geom.size, 0.0, 0.25))
    ses = ()
    if geom.sesamoids:
        sr = 2.4 * geom.size
        ses = (Ellipse("sesamoid_r", mcp1 - ut * 2 - nt * 3.2 * geom.size, (sr, sr), 0.0),
               Ellipse("sesamoid_u", mcp1 - ut * 2 + nt * 3.2 * geom.size, (sr, sr), 0.0))
    # ROI square from the ring-little and index-middle valleys
    v_rl, v_mr, v_im = e[1], e[2], e[3]
    span = np.linalg.norm(v_im - v_rl)
    ru = _unit(v_im - v_rl)
    rn = np.array([ru[1], -ru[0]])                           # toward the wrist
    side = 1.25 * span
    centre = (v_rl + v_im) / 2 + rn * (0.25 * span + side / 2)
    hu, hn = ru * side / 2, rn * side / 2
    corners = np.array([centre - hu - hn, centre + hu - hn, centre + hu + hn, centre - hu + hn])
    valleys = {"index_middle": v_im, "middle_ring": v_mr, "ring_little": v_rl, "thumb_index": v_t,
               "ulnar_corner": e[0], "radial_corner": e[4]}
    half = np.array([W / 2, H / 2], np.float32) * (np.float32([-1, 1]) if geom.hand == "left"
                                                   else np.float32([1, 1]))
    veins = tuple(Polyline(v.points * half, v.width, v.depth) for v in geom.veins)
    creases = tuple(Polyline(c.points * half, c.width, c.depth) for c in geom.creases)

    mirror = geom.hand == "left"
    flip = np.array([-1.0, 1.0])

    def m(p: np.ndarray) -> np.ndarray:
        return p * flip if mirror else p

    def m_bone(b: Bone) -> Bone:
        return Bone(b.name, m(b.a), m(b.b), b.width, b.flare_base, b.flare_head)

    if mirror:
        # mirrored ROI: keep "top-left" etc. in image terms: swap left/right corners
        corners = corners[[1, 0, 3, 2]]
    return HandLayout(
        hand=geom.hand,
        palm_polygon=m(palm), forearm_polygon=m(forearm),
        finger_polygons=tuple(m(polys[f]) for f in range(5)),
        finger_axes=tuple((m(axes[f][0]), m(axes[f][1])) for f in range(5)),
        finger_widths=tuple(widths[f] for f in range(5)),
        valleys={k: m(v) for k, v in valleys.items()},
        palm_centre=m(centre), roi_corners=m(corners), roi_side=float(side),
        bones=tuple(m_bone(b) for b in bones),
        joints=tuple(Joint(j.name, m(j.centre), m(j.direction), j.width, j.gap, j.tissue)
                     for j in joints),
        carpals=tuple(Ellipse(c.name, m(c.centre), c.axes, -c.angle if mirror else c.angle)
                      for c in carpals),
        sesamoids=tuple(Ellipse(c.name, m(c.centre), c.axes, c.angle) for c in ses),
        creases_mm=creases, veins_mm=veins,       # already mirrored
    )


def bone_lengths(layout: HandLayout) -> dict[str, float]:
    """Length (mm, in the palm plane) of every bone of a layout, keyed by bone name."""
    return {b.name: float(np.linalg.norm(b.b - b.a)) for b in layout.bones}
