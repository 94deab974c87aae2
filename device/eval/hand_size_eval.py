"""The views' hand against the enrolled hand's size (:mod:`device.gate.hand_size`): measure it
on a rendered presentation set, and choose its signed tolerance.

    python -m device.eval.hand_size_eval measure SET --sensor xray|nir --out M.npz \\
        [--bona-fide N] [--enrol-presentations N]
    python -m device.eval.hand_size_eval fit M.npz [M2.npz ...] [--rate 0.001] [--out J]

``measure``: the set's people (:class:`device.synth.source.SyntheticPeople` of the set's seed)
each give their enrolment presentations (``--enrol-presentations``, 2 by default as every run
before; the product takes 3), as :func:`device.eval.synthetic_gate.enrol_people` renders them
(the first try); every bona fide presentation (the first N) and every
``mixed_replica_views`` one go through the gate's own quality, calibration, regions and binding
(:meth:`device.gate.sensor_binding.BindingStage.score`, whatever its verdict), and the views'
hand size of each (:func:`device.gate.hand_size.hand_size`) is kept. ``fit``: the ratio of every
presentation to its person's enrolled size (:func:`~device.gate.hand_size.size_ratio`), and the
tolerance by the rule: the smallest multiple of 0.5 % with the genuine denials by it at most
``rate`` of the genuine presentations (of all the files together); what it does to the
``mixed_replica_views`` of each variant is printed beside.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from device.gate import hand_size as H


def _size(pipe, burst):
    from device.gate.decision import Decision, Deny
    out = Decision()
    try:
        ok = pipe._quality(burst, out)
        burst = pipe.calibrate(burst, ok)
        pipe._regions(burst, ok, out)
        b = pipe.binding.score(burst.views, burst.sensor, out.landmarks)
    except Deny as d:
        return None, d.reason
    p = b.probes
    return (None, "not_placed") if p is None else (H.hand_size(p.points, p.px_mm), "ok")


def enrol_numbers(presentations: int = 2) -> range:
    """The enrolment presentation numbers (``SyntheticPeople.burst(person, "enrol", n)``) that
    give a person's enrolled size: the first enrolment try's."""
    from device.eval.synthetic_gate import enrolment_bursts
    return enrolment_bursts(0, presentations)


def measure(data_dir, sensor: str, out, bona_fide: int | None = None, log=print,
            enrol_presentations: int = 2) -> dict:
    """Write ``out`` (npz: ``enrol`` (people, presentations, D), ``pres`` (N, D), ``rows``
    JSON)."""
    from device.eval.liveness_enrol import read_set
    from device.eval.synthetic_gate import synthetic_gate
    from device.sources.replay import read_burst
    from device.synth.source import SyntheticPeople
    d = Path(data_dir)
    info = read_set(d)
    files = json.loads((d / "manifest.json").read_text())["files"]
    files = [f for f in files if f["class"] == "bona_fide"][:bona_fide] + \
        [f for f in files if f["class"] == "mixed_replica_views"]
    people = SyntheticPeople(seed=info["seed"], views=info["views"], sensor=sensor)
    D = len(H.SIZE_PAIRS)
    ks = enrol_numbers(enrol_presentations)
    E = np.full((info["people"], len(ks), D), np.nan, np.float32)
    X = np.full((len(files), D), np.nan, np.float32)
    rows = []
    with synthetic_gate(info["seed"], info["views"], "int8", sensor, 1) as (pipe, _st):
        for i in range(info["people"]):
            for k in ks:
                s, _ = _size(pipe, people.burst(i, "enrol", k))
                if s is not None:
                    E[i, k] = s
        for n, f in enumerate(files):
            s, why = _size(pipe, read_burst(d / f["folder"]))
            if s is not None:
                X[n] = s
            rows.append({**{k: f.get(k) for k in ("class", "person", "variant", "scale",
                                                   "folder")}, "why": why})
            if (n + 1) % 200 == 0:
                log(f"{n + 1}/{len(files)}")
    np.savez(out, enrol=E, pres=X, rows=json.dumps(rows), seed=info["seed"], sensor=sensor)
    return {"people": info["people"], "presentations": len(files)}


def ratios(path) -> tuple[np.ndarray, list]:
    """(ratio of every presentation to its person's enrolled size, rows) of a measure file."""
    z = np.load(path)
    E, X, rows = z["enrol"], z["pres"], json.loads(str(z["rows"]))
    r = np.array([H.size_ratio([e for e in E[row["person"]] if np.isfinite(e).any()], x)
                  for row, x in zip(rows, X)])
    return r, rows


def choose(off_genuine: np.ndarray, rate: float, step: float = 0.005) -> float:
    """The smallest multiple of ``step`` with at most ``rate`` of ``off_genuine`` above it
    (a genuine presentation not measured counts as denied)."""
    off = np.sort(np.asarray(off_genuine, np.float64))
    allowed = int(np.floor(rate * len(off)))
    k = off[len(off) - 1 - allowed] if allowed < len(off) else 0.0
    if not np.isfinite(k):
        raise ValueError("more genuine presentations unmeasured than the rate allows")
    return float(np.ceil(round(k / step, 9)) * step)


def fit(paths, rate: float = 0.001) -> dict:
    offs, att = [], {}
    for p in paths:
        r, rows = ratios(p)
        for x, row in zip(r, rows):
            o = H.size_off(x)
            if row["class"] == "bona_fide":
                offs.append(o)
            else:
                att.setdefault(row["variant"], []).append(o)
    offs = np.array(offs)
    t = choose(offs, rate)
    q = np.quantile(np.where(np.isfinite(offs), offs, 9.0), [0.5, 0.99, 0.999, 1.0])
    return {"max_off": t, "rule": f"the smallest multiple of 0.5 % with genuine denials by it "
                                  f"<= {rate:g} of the validation genuine presentations",
            "validation": {"genuine_denied": f"{int((offs > t).sum())}/{len(offs)}",
                           "genuine_off_q50_q99_q999_max": [round(float(v), 4) for v in q],
                           **{f"mixed_replica_views_{v}_denied":
                              f"{int((np.array(o) > t).sum())}/{len(o)}"
                              for v, o in sorted(att.items())}}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.hand_size_eval")
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("set")
    m.add_argument("--sensor", choices=("xray", "nir"), required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--bona-fide", type=int, default=None)
    m.add_argument("--enrol-presentations", type=int, default=2, metavar="N",
                   help="enrolment presentations a person (default %(default)s; the product 3)")
    f = sub.add_parser("fit")
    f.add_argument("files", nargs="+")
    f.add_argument("--rate", type=float, default=0.001)
    f.add_argument("--out")
    a = ap.parse_args(argv)
    if a.cmd == "measure":
        print(json.dumps(measure(a.set, a.sensor, a.out, a.bona_fide,
                                 enrol_presentations=a.enrol_presentations)))
        return 0
    res = fit(a.files, a.rate)
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
