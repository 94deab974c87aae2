"""The data model of the synthetic hands and the mean adult anatomy they are drawn around.

Hand frame: millimetres, origin at the centre of the palm rectangle, +y from the wrist toward
the fingers, +x toward the thumb for a right hand (see :mod:`device.synth.hand_geometry`).

* :class:`HandGeometry` -- one identity's hand; :class:`HandPose` -- one presentation;
  :class:`HandLayout` -- a geometry in a pose (outline, keypoints, skeleton), made of
  :class:`Bone`, :class:`Joint`, :class:`Ellipse` and :class:`Polyline` parts.
* ``_METACARPAL`` ... ``_CARPALS`` -- the mean anatomy that :func:`sample_hand_geometry`
  perturbs per identity and :func:`hand_layout` builds the carpals from.

No imports from its sibling modules: ``hand_geometry`` and ``hand_layout`` import from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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
