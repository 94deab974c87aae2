"""Presentations whose visible views and transmission-sensor frame show one scene: the same hand
in the same pose, seen by the camera rig and by a sensor fixed in the gate.

The other renderers draw the sensor frame's pose on its own (``device.synth.sensor``: the grid
is centred on each hand's palm); here the sensor is a fixed part of the synthetic gate, so the
sensor frame is tied to the views by a *registration* like a real unit's factory one:

- the gate plane is the working plane z = 0 of the rig's world frame (mm; the cameras sit at
  z > 0, 240-290 mm away);
- the sensor maps the gate plane to its pixels by a similarity (:func:`sensor_plane_matrix`):
  its square field of view (``FOV_MM / NOMINAL_ZOOM``) centred on :data:`SENSOR_CENTRE_MM`;
- a hand held at height ``depth`` off the plane is magnified by :func:`depth_magnification`
  (X-ray: the source is above the hand, the detector below; NIR: the camera is below);
- view ``k`` sees the plane through the homography ``K [r1 r2 t]`` of its camera, so the
  *nominal registration* (sensor pixels -> view pixels, points on the plane) is
  ``plane_homography(cam_k) @ inv(sensor_plane_matrix)`` (:func:`nominal_registration`).

Everything a real registration gets wrong is in the render: the hand's depth (+-15 mm) and tilt
(+-8 deg) put it off the plane the registration was made for, and the sensor renderer ignores
the tilt's foreshortening. Pure numpy + OpenCV; no model runs here except the palm texture the
caller passes in.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from types import MappingProxyType
from typing import Mapping

import numpy as np

from device.synth import sensor as S
from device.synth.hand_geometry import HandGeometry, HandPose, hand_layout, perturb_pose

NOMINAL_ZOOM: Mapping[str, float] = MappingProxyType({"xray": 1.15, "nir": 1.0})
"""Magnification of a hand on the working plane (X-ray: geometric, source above, detector
below; NIR: the lens's at the plane)."""

SENSOR_CENTRE_MM: Mapping[str, tuple[float, float]] = MappingProxyType(
    {"xray": (0.0, 22.0), "nir": (0.0, 5.0)})
"""Gate-plane point (mm) under the sensor's centre: X-ray 12 mm above a typical palm centre
(fingers and wrist fit), NIR 5 mm below it, as the per-hand grids of device.synth.sensor."""

PLANE_TO_FOCUS_MM: Mapping[str, float] = MappingProxyType({"xray": 870.0, "nir": 250.0})
"""X-ray: the source's distance above the working plane (a raised hand nears it and grows on
the detector below); NIR: the sensor camera's distance below the plane (a raised hand shrinks)."""


NIR_PALM_PRINT = True
"""Whether NIR frames show the palm print (the physically consistent world: an 850 nm camera
sees the palm's lines, as the real PolyU NIR captures do): a live hand's frame the print its
views show, and every attack species that copies a palm's surface the print it copies
(docs/sensor-branch.md, "The NIR world"). On since the NIR liveness model trained in that world
(profile ``nirworld``, round 11) shipped with the palm-line binding's numbers; off gives the
world the first NIR models were trained in (sets of that world carry no ``_palmprint``
suffix). ``binding_eval --nir-palm-print`` is kept for the commands that name it."""


NIR_WORLDS: tuple[str, ...] = ("palm-print", "old")
"""The NIR worlds a command can render (``--nir-world``): with the palm print, or without it."""


def use_nir_world(world: str) -> None:
    """Render the NIR ``world`` from now on in this process (sets :data:`NIR_PALM_PRINT`)."""
    global NIR_PALM_PRINT
    if world not in NIR_WORLDS:
        raise ValueError(f"unknown NIR world {world!r}; known: {NIR_WORLDS}")
    NIR_PALM_PRINT = world == "palm-print"


def palm_print_on(sensor: str) -> bool:
    """Whether ``sensor``'s frames show the palm print (read at each call, so a test or an
    evaluation may switch :data:`NIR_PALM_PRINT`)."""
    return bool(NIR_PALM_PRINT) and sensor == "nir"


def sensor_size(sensor: str) -> tuple[int, int]:
    """(H, W) of the sensor's capture."""
    return tuple(S.CAPTURE_SIZE[sensor])


def sensor_plane_matrix(sensor: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """3x3: gate-plane mm (x, y, 1) -> sensor pixel (col, row, 1) of a hand on the plane.
    ``size`` (H, W), default the capture size."""
    h, w = size or sensor_size(sensor)
    k = min(h, w) / S.FOV_MM[sensor] * NOMINAL_ZOOM[sensor]
    cx, cy = SENSOR_CENTRE_MM[sensor]
    return np.array([[k, 0.0, w / 2 - k * cx], [0.0, -k, h / 2 + k * cy], [0.0, 0.0, 1.0]])


def depth_magnification(sensor: str, depth: float) -> float:
    """Relative magnification of a hand ``depth`` mm off the plane toward the cameras."""
    d = PLANE_TO_FOCUS_MM[sensor]
    return d / (d - depth) if sensor == "xray" else d / (d + depth)


def plane_homography(cam) -> np.ndarray:
    """3x3: gate-plane mm (x, y, 1) on z = 0 -> pixels of a :class:`~device.synth.hands.Camera`."""
    return cam.K @ np.column_stack([cam.R[:, 0], cam.R[:, 1], cam.t])


def nominal_registration(rig, sensor: str, sensor_shape: tuple[int, int] | None = None
                         ) -> list[np.ndarray]:
    """Per camera of ``rig``: 3x3 sensor pixel -> view pixel for points on the working plane
    (the rig's views at the size its cameras were made for)."""
    Si = np.linalg.inv(sensor_plane_matrix(sensor, sensor_shape))
    out = []
    for cam in rig:
        H = plane_homography(cam) @ Si
        out.append(H / H[2, 2])
    return out


def scene_placement(geom: HandGeometry, pose: HandPose, depth: float, sensor: str
                    ) -> tuple[HandPose, float]:
    """(pose, zoom) to hand a ``device.synth.sensor`` scene so that its per-hand grid is this
    fixed sensor seeing ``geom`` in ``pose`` at ``depth`` (tilt ignored)."""
    layout = hand_layout(geom, pose)
    off = np.array([0.0, 12.0]) if sensor == "xray" else np.array([0.0, -5.0])
    c = layout.palm_centre + off
    a = np.deg2rad(pose.rotation)
    Rz = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = np.asarray(pose.translation, np.float64) - np.asarray(SENSOR_CENTRE_MM[sensor]) + Rz @ c
    zoom = NOMINAL_ZOOM[sensor] * depth_magnification(sensor, depth)
    return replace(pose, translation=(float(t[0]), float(t[1]))), float(zoom)


def bona_fide_scene(sensor: str):
    return S.bona_fide_xray_scene if sensor == "xray" else S.bona_fide_nir_scene


def render_placed(scene_fn, geom: HandGeometry, rng: np.random.Generator, sensor: str,
                  pose: HandPose, depth: float, size: tuple[int, int] | None = None,
                  scale: float = 1.0, palm_texture: np.ndarray | None = None) -> np.ndarray:
    """A sensor frame (float32 in [0, 1]) of a scene that takes ``pose`` and ``zoom`` (the
    bona fide scenes), the hand placed in the gate by ``pose`` and ``depth`` (and shown
    ``scale`` times its size: a replica printed larger or smaller). ``palm_texture``: the palm
    print the views of this hand show, which the NIR frame shows with :data:`NIR_PALM_PRINT`
    (ignored otherwise, and for X-ray)."""
    p, z = scene_placement(geom, pose, depth, sensor)
    kw = ({"palm_texture": palm_texture}
          if palm_print_on(sensor) and palm_texture is not None else {})
    return S.render_scene(partial(scene_fn, pose=p, zoom=z * scale, **kw), geom, rng, sensor,
                          tuple(size or sensor_size(sensor)))


@dataclass(frozen=True, eq=False)
class BoundShot:
    """One presentation of one scene: the views (BGR uint8), the sensor frame (float32 in
    [0, 1]), the pose and depth of the hand the views saw."""

    views: list
    sensor: np.ndarray
    pose: HandPose
    depth: float


def render_views(geom: HandGeometry, palm_texture: np.ndarray, rng: np.random.Generator,
                 rig, pose: HandPose, size: tuple[int, int] = (480, 640)
                 ) -> tuple[list, float]:
    """(views, depth) of ``geom`` in ``pose`` through ``rig``."""
    from device.synth.hands import render_hand_views
    shots = render_hand_views(geom, palm_texture, rng, views=len(rig), size=size, rig=rig,
                              pose=pose)
    return [img for img, _ in shots], float(shots[0][1]["hand_pose"]["t"][2])


def render_bound(geom: HandGeometry, palm_texture: np.ndarray, rng: np.random.Generator,
                 rig, sensor: str, size: tuple[int, int] = (480, 640),
                 pose: HandPose | None = None) -> BoundShot:
    """A live presentation: the views and the sensor frame of one hand in one pose."""
    pose = pose or perturb_pose(rng, 0.8)
    views, depth = render_views(geom, palm_texture, rng, rig, pose, size)
    frame = render_placed(bona_fide_scene(sensor), geom, rng, sensor, pose, depth,
                          palm_texture=palm_texture)
    return BoundShot(views, frame, pose, depth)


def synthetic_registration(seed: int, views: int, sensor: str,
                           size: tuple[int, int] = (480, 640)) -> tuple[list, tuple[int, int]]:
    """(registration, view size (H, W)) of the synthetic gate of ``seed``: the rig
    :class:`device.synth.source.SyntheticPeople` renders with and this module's sensor."""
    from device.synth.hands import sample_rig
    rig = sample_rig(np.random.default_rng([seed, 4]), views, size)
    return nominal_registration(rig, sensor), tuple(size)


def synthetic_cameras(seed: int, views: int, size: tuple[int, int] = (480, 640)) -> list:
    """The camera matrices (3x3) of the synthetic gate of ``seed``'s views."""
    from device.synth.hands import sample_rig
    return [cam.K for cam in sample_rig(np.random.default_rng([seed, 4]), views, size)]


def sensor_optics(sensor: str, size: tuple[int, int] | None = None
                  ) -> tuple[float, np.ndarray]:
    """(pixels per mm on the working plane, the sensor's centre of projection (x, y, height)
    in the sensor-pixel world: x, y sensor pixels, height in the same units, positive toward
    the cameras) of this module's sensor, for a frame of ``size`` (H, W). NIR: the camera
    :data:`PLANE_TO_FOCUS_MM` below the plane; X-ray: the source that far above it; both on the
    frame's centre."""
    h, w = size or sensor_size(sensor)
    k = float(sensor_plane_matrix(sensor, (h, w))[0, 0])
    d = PLANE_TO_FOCUS_MM[sensor] * k
    return k, np.array([w / 2, h / 2, -d if sensor == "nir" else d])
