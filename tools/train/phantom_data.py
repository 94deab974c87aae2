"""Training frames for a learned X-ray phantom detector (a feasibility measurement, issue 21;
docs/results.md "A learned X-ray phantom detector"): live hands against radiographic hand
phantoms (``skeleton_phantom``, :func:`device.synth.attacks_composite.skeleton_phantom_scene`),
the X-ray **sensor frame only** -- no views are rendered.

Classes (label 1 = phantom):

* ``live_placed`` (0): a live hand placed in the gate as a whole presentation places it
  (:func:`device.synth.bound.render_placed`, pose :func:`perturb_pose` at 0.8, depth +-15 mm --
  the draws :func:`device.synth.bound.render_bound` makes, without the views);
* ``live_scene`` (0): a live hand as the liveness frame sets draw it (the scene's own pose,
  centred: the phantom's kind of placement), so placement alone cannot tell the classes apart;
* ``phantom`` (1): :func:`device.synth.attacks.render_attack` of ``skeleton_phantom`` (its
  own pose and zoom, as a whole presentation's sensor frame draws it);
* ``phantom_cues`` (1, a training variant): the same phantom draws as ``phantom`` (frame ``i``
  of one is frame ``i`` of the other) with the phantom's three renderer cues
  (:data:`device.synth.attacks_composite.PHANTOM_CUES`) each kept or made lifelike at random
  (:func:`lifelike_cues`, at least one kept), so a detector cannot rest on one of them;
* ``live_narrow`` (0, only in the monitoring split): a live hand in the phantom's own pose
  draw (``scene_pose`` at 0.4) -- a check that the detector does not refuse the pose;
* ``hard_placed``, ``hard_scene`` (0) and ``hard_phantom`` (1), a training variant (hard
  negatives, docs/results.md "The phantom check retrained with the live tail's hands"): frame
  ``i`` is hand ``identity(seed, i)`` -- meant for the indices :func:`risk_hands` picks, the
  live hands the check denies most -- drawn as ``live_placed`` / ``live_scene`` / ``phantom``
  draw theirs, each from its own generator; :func:`hard_plan` lays them out.

Each frame has its own generator seeded from ``(seed, 46, class index, i)`` and its own hand
(:func:`device.synth.sensor_sets.identity` of ``(seed, i)``); frames are quantised to uint8
as ``sensor.png`` is. Run::

    python -m tools.train.phantom_data --seed S --n N --out /tmp/phnet/train_S.npz
"""
from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

CLASSES = ("live_placed", "live_scene", "phantom", "live_narrow", "phantom_cues",
           "hard_placed", "hard_scene", "hard_phantom")
LABEL = {"live_placed": 0, "live_scene": 0, "phantom": 1, "live_narrow": 0, "phantom_cues": 1,
         "hard_placed": 0, "hard_scene": 0, "hard_phantom": 1}
_AS = {"hard_placed": "live_placed", "hard_scene": "live_scene", "hard_phantom": "phantom"}
"""The class whose kind of draw a hard class makes (from its own generator)."""
_KIND = 46
_CUES = 99
RISK_LIMITS = {"size": ("<", 0.953), "palm_thickness": ("<", 23.85),
               "joint_space": ("<", 1.60), "cortex_fraction": (">", 0.305)}
"""The traits of the live hands the phantom check denies most (docs/results.md, branch
``phlive``: the quartiles of 52711's live hands; joint space: the mean of the hand's)."""
RISK_MIN = 3


def risk_traits(geom) -> int:
    """How many of :data:`RISK_LIMITS` a hand (:class:`HandGeometry`) carries."""
    vals = {"size": float(geom.size), "palm_thickness": float(geom.palm_thickness),
            "joint_space": float(np.mean(geom.joint_spaces)),
            "cortex_fraction": float(geom.cortex_fraction)}
    return sum(int(vals[k] < t if op == "<" else vals[k] > t)
               for k, (op, t) in RISK_LIMITS.items())


def risk_hands(seed: int, n: int, min_traits: int = RISK_MIN) -> list[int]:
    """The first ``n`` indices ``i`` (ascending) whose hand ``identity(seed, i)`` carries at
    least ``min_traits`` risk traits."""
    from device.synth.sensor_sets import identity
    out, i = [], 0
    while len(out) < n:
        if risk_traits(identity(seed, i)) >= min_traits:
            out.append(i)
        i += 1
    return out


def lifelike_cues(seed: int, i: int) -> frozenset[str]:
    """Which of the phantom's cues frame ``i`` renders lifelike: one of the 7 subsets of
    :data:`~device.synth.attacks_composite.PHANTOM_CUES` that keep at least one cue, uniformly,
    from its own generator ``(seed, 46, 99, i)`` (the scene's draws are untouched)."""
    from device.synth.attacks_composite import PHANTOM_CUES
    k = int(np.random.default_rng([seed, _KIND, _CUES, i]).integers(0, 2 ** len(PHANTOM_CUES) - 1))
    return frozenset(c for b, c in enumerate(PHANTOM_CUES) if k >> b & 1)


def to_u8(frame: np.ndarray) -> np.ndarray:
    """A float frame in [0, 1] as sensor.png stores it (uint8, rounded)."""
    return np.clip(np.round(np.asarray(frame, np.float32) * 255.0), 0, 255).astype(np.uint8)


def render_frame(cls: str, seed: int, i: int) -> np.ndarray:
    """Frame ``i`` of class ``cls`` (float32 128x128 in [0, 1])."""
    from device.synth import sensor as S
    from device.synth.attacks import render_attack
    from device.synth.bound import bona_fide_scene, render_placed
    from device.synth.hand_geometry import perturb_pose
    from device.synth.placement import scene_pose
    from device.synth.sensor_sets import identity
    if cls not in CLASSES:
        raise ValueError(f"unknown class {cls!r}; known: {CLASSES}")
    own = "phantom" if cls == "phantom_cues" else cls      # the same draws as ``phantom``
    rng = np.random.default_rng([seed, _KIND, CLASSES.index(own), i])
    geom = identity(seed, i)
    cls = _AS.get(cls, cls)
    if cls == "live_placed":
        pose = perturb_pose(rng, 0.8)
        depth = float(rng.uniform(-15, 15))
        return render_placed(bona_fide_scene("xray"), geom, rng, "xray", pose, depth)
    if cls == "live_scene":
        return S.render_scene(S.bona_fide_xray_scene, geom, rng, "xray",
                              tuple(S.CAPTURE_SIZE["xray"]), 1)
    if cls == "live_narrow":
        scene = partial(S.bona_fide_xray_scene, pose=scene_pose(rng, 0.4))
        return S.render_scene(scene, geom, rng, "xray", tuple(S.CAPTURE_SIZE["xray"]), 1)
    if cls == "phantom":
        return render_attack("skeleton_phantom", geom, rng, "xray")
    if cls == "phantom_cues":
        from device.synth.attacks_composite import skeleton_phantom_scene
        scene = partial(skeleton_phantom_scene, lifelike=lifelike_cues(seed, i))
        return S.render_scene(scene, geom, rng, "xray", tuple(S.CAPTURE_SIZE["xray"]), 1)
    raise AssertionError(cls)


def plan(n: int, monitor: bool = False) -> list[tuple[str, int]]:
    """(class, index) of a set of ``n`` phantoms and ``n`` live hands (3/5 placed, 2/5 in the
    scene's own placement); with ``monitor`` also ``n // 2`` live hands in the phantom's pose."""
    n_placed = (3 * n) // 5
    out = [("live_placed", i) for i in range(n_placed)]
    out += [("live_scene", i) for i in range(n - n_placed)]
    out += [("phantom", i) for i in range(n)]
    if monitor:
        out += [("live_narrow", i) for i in range(n // 2)]
    return out


def hard_plan(seed: int, n: int) -> list[tuple[str, int]]:
    """(class, index) of ``n`` hard negatives of ``seed`` and a phantom cast on each: the
    first ``n`` :func:`risk_hands`, the first 3/5 of them placed as at the gate, the rest in
    the scene's own placement."""
    hands = risk_hands(seed, n)
    n_placed = (3 * n) // 5
    out = [("hard_placed", i) for i in hands[:n_placed]]
    out += [("hard_scene", i) for i in hands[n_placed:]]
    out += [("hard_phantom", i) for i in hands]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--n", type=int, required=True, help="phantoms (and live hands) to render")
    ap.add_argument("--monitor", action="store_true", help="add live hands in the phantom's pose")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    items = plan(a.n, a.monitor)
    frames = np.zeros((len(items), 128, 128), np.uint8)
    t = time.time()
    for k, (cls, i) in enumerate(items):
        frames[k] = to_u8(render_frame(cls, a.seed, i))
        if k % 500 == 0:
            print(f"{k}/{len(items)} {time.time() - t:.0f} s", flush=True)
    np.savez_compressed(a.out, frames=frames, cls=np.array([c for c, _ in items]),
                        label=np.array([LABEL[c] for c, _ in items], np.uint8),
                        seed=a.seed)
    print(f"wrote {a.out}: {len(items)} frames in {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
