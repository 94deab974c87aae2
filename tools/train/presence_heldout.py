"""The presence check's held-out test (issue 21): frames no training or threshold choice saw.

``python -m tools.train.presence_heldout --sensor xray|nir [--n 10000] [--out REPORT.json]
[--models DIR] [--write-no-hand DIR]``

* no-hand frames: ``--n`` frames cycling over *every* kind of device.synth.no_hand -- the
  held-out texture families (Voronoi, fractal, glyphs, rings) that no model was trained on
  included -- from a held-out generator seed (``--seed``, default NEG_SEEDS['test'] = 5303) and
  the held-out pictures
  (tools/train/presence_data.py): how many the presence check accepts, per kind, fp32 and int8;
  and how many the whole sensor stage (presence -> SR -> liveness) passes;
* hand frames: the synthetic held-out liveness set (seed 3003: 1,000 bona fide, 300 per attack
  species, the frames ``python -m tools.synth liveness --seed 3003`` writes) and, for NIR, the
  real PolyU palms of the held-out subjects: bona fide the presence check refuses, and attacks
  it removes per species (they then never reach liveness).

``--write-no-hand DIR`` also writes the no-hand frames as ``DIR/attack/no_hand/*.png`` for
``palmgate evaluate-liveness``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from device.synth.attacks import BONA_FIDE
from device.synth.no_hand import KINDS, no_hand_frames
from tools.train.presence_data import (NEG_SEEDS, OTHER, real_nir, sources,
                                       synthetic_hands)


def _count(flags, names) -> dict:
    out: dict = {}
    for f, n in zip(flags, names):
        if f:
            out[n] = out.get(n, 0) + 1
    return dict(sorted(out.items()))


def evaluate(sensor: str, n: int, models_dir=None, bona_fide: int = 1000,
             per_species: int = 300, write_no_hand=None, seed: int = NEG_SEEDS["test"],
             log=print) -> dict:
    from device.models.model import DEFAULT_MODELS_DIR
    from device.models.sensor_branch import SensorBranch

    t0 = time.time()
    hands, classes = synthetic_hands(sensor, "test", bona_fide, per_species)
    real = real_nir("test") if sensor == "nir" else np.zeros((0, 128, 128), np.float32)
    other, _ = synthetic_hands(OTHER[sensor], "test", 200, 0)
    src_hands = np.concatenate([hands, real]) if len(real) else hands
    neg, kinds = no_hand_frames(n, seed, KINDS, sources("test", src_hands, other))
    log(f"{sensor}: {len(neg)} no-hand frames, {len(hands)} synthetic + {len(real)} real hand "
        f"frames ({time.time() - t0:.0f}s)")
    if write_no_hand:
        import cv2
        d = Path(write_no_hand) / "attack" / "no_hand"
        d.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(neg):
            cv2.imwrite(str(d / f"{i:05d}.png"), np.round(f * 255).astype(np.uint8))
        (Path(write_no_hand) / "no_hand.json").write_text(json.dumps(
            {"seed": seed, "kinds": kinds}))
    report = {"sensor": sensor, "no_hand_frames": len(neg), "no_hand_seed": seed,
              "no_hand_per_kind": {k: kinds.count(k) for k in sorted(set(kinds))},
              "synthetic_hand_frames": {c: classes.count(c) for c in sorted(set(classes))},
              "real_bona_fide_frames": int(len(real))}
    for precision in ("fp32", "int8"):
        t1 = time.time()
        branch = SensorBranch(sensor, precision, models_dir or DEFAULT_MODELS_DIR, threads=1)
        pres = branch.presence
        r: dict = {"presence_model": pres.model.path.name, "threshold": pres.threshold}
        pn = pres(neg)
        acc = [p.present for p in pn]
        classical = [not p.failed for p in pn]
        r["no_hand_accepted"] = int(sum(acc))
        r["no_hand_accepted_per_kind"] = _count(acc, kinds)
        r["no_hand_passing_classical"] = int(sum(classical))
        r["no_hand_passing_classical_per_kind"] = _count(classical, kinds)
        stage = branch.judge([neg[i] for i in np.flatnonzero(acc)]) if any(acc) else []
        r["no_hand_passed_whole_stage"] = int(sum(s.reason is None for s in stage))
        ph = pres(hands)
        rej = [not p.present for p in ph]
        r["synthetic_bona_fide_rejected"] = int(sum(x for x, c in zip(rej, classes)
                                                     if c == BONA_FIDE))
        r["attacks_removed_per_species"] = {c: int(sum(x for x, k in zip(rej, classes)
                                                       if k == c))
                                            for c in sorted(set(classes)) if c != BONA_FIDE}
        if len(real):
            r["real_bona_fide_rejected"] = int(sum(not p.present for p in pres(real)))
        r["p_hand_min_bona_fide"] = float(min(p.p_hand for p, c in zip(ph, classes)
                                             if c == BONA_FIDE and p.p_hand is not None))
        scored = [p.p_hand for p in pn if p.p_hand is not None]
        r["p_hand_max_no_hand"] = float(max(scored)) if scored else None
        r["seconds"] = round(time.time() - t1, 1)
        report[precision] = r
        log(f"{precision}: {json.dumps(r)}")
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.train.presence_heldout",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sensor", choices=["xray", "nir"], required=True)
    p.add_argument("--n", type=int, default=10000, help="no-hand frames")
    p.add_argument("--bona-fide", type=int, default=1000)
    p.add_argument("--per-species", type=int, default=300)
    p.add_argument("--seed", type=int, default=NEG_SEEDS["test"],
                   help="generator seed of the no-hand frames (held-out: 5303, 5404, ...; "
                        "never a training or validation seed)")
    p.add_argument("--models", default=None, help="models folder (default: the shipped one)")
    p.add_argument("--out", default=None, help="write the report (JSON) here")
    p.add_argument("--write-no-hand", default=None, metavar="DIR")
    a = p.parse_args(argv)
    if a.seed in (NEG_SEEDS["train"], NEG_SEEDS["val"]):
        raise SystemExit(f"seed {a.seed} is a training or validation seed")
    rep = evaluate(a.sensor, a.n, a.models, a.bona_fide, a.per_species, a.write_no_hand,
                   a.seed, log=lambda m: print(m, file=sys.stderr, flush=True))
    rep["command"] = "python -m tools.train.presence_heldout " + " ".join(sys.argv[1:] if
                                                                          argv is None else argv)
    text = json.dumps(rep, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
