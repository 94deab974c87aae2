"""The NIR identity check's cohort (:mod:`device.gate.identity_cohort`): the gate's palm patches of
a training seed's synthetic hands, each genuine presentation through the gate's own enrolment
screen (:meth:`device.gate.pipeline.Pipeline.screen`: quality, regions, liveness, the binding,
the patch where the binding placed the hand), written as the signed file's bytes::

    python -m device.eval.identity_cohort_build --seed 60203 --people 60 --presentations 2 \\
        --out models/identity_cohort_nir.npz

A presentation the screen refuses, or whose patch cannot be made, is left out. The seed must be
one no threshold is chosen or read on (docs/results.md "The NIR identity agreement normalised
by each person's cohort").
"""
from __future__ import annotations

import argparse


def cohort_patches(seed: int, people: int, presentations: int, precision: str = "int8",
                   log=print) -> list:
    """The palm patches of ``people`` persons x ``presentations`` genuine presentations."""
    import torch
    torch.set_num_threads(1)
    from device.eval.synthetic_gate import synthetic_gate
    from device.gate.decision import Decision, Deny
    from device.synth.source import SyntheticPeople
    synth = SyntheticPeople(seed=seed, views=3, sensor="nir")
    out = []
    with synthetic_gate(seed, 3, precision, "nir", policy="when_enrolled",
                        prefix="palmgate-cohort-") as (pipe, _):
        for p in range(people):
            for k in range(presentations):
                d = Decision()
                try:
                    pipe.screen(synth.burst(p, "genuine", k), d)
                except Deny as e:
                    log(f"person {p} presentation {k}: refused ({e})")
                    continue
                if d.sensor_patch is not None:
                    out.append(d.sensor_patch)
    return out


def main(argv=None) -> int:
    from device.gate.identity_cohort import cohort_to_bytes
    ap = argparse.ArgumentParser(prog="python -m device.eval.identity_cohort_build",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--people", type=int, default=60)
    ap.add_argument("--presentations", type=int, default=2)
    ap.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    pts = cohort_patches(a.seed, a.people, a.presentations, a.precision)
    with open(a.out, "wb") as f:
        f.write(cohort_to_bytes(pts))
    print(f"{len(pts)} patches -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
