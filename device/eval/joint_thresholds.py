"""The sensor stage's PAD thresholds chosen together, on every check's value for every
validation presentation (:mod:`device.eval.check_margins`' rows): the vector of thresholds that
denies the fewest bona fide presentations, subject to opening no attack that today's thresholds
keep shut, with room (docs/results.md "The sensor stage's PAD thresholds chosen jointly").

Each check was chosen alone, each spending its own share of the bona fide budget; most attacks
are stopped by more than one check. The rule (:func:`choose`), over the thresholds of
:data:`CHECKS` that the rows' thresholds have:

(a) the attacks that pass every check are those that pass today -- none added;
(b) room: an attack the move touches -- it loses a stopper (a check it fails today and passes
    under the new vector), or a check it still fails was moved toward it -- must still fail
    one check by at least ``margin`` of that check's bona fide spread toward its threshold
    (:func:`tail_sd`: (median - 1st percentile) / 2.326 of the bona fide values on the
    "passes more" scale, a normal's sd; p(live) on the logit scale); a value not
    measured, or a denial without a threshold (presence), counts as failed with room. So no
    moved threshold ends near an attack that passes every other check, and no attack is left
    resting on a check it fails by a hair;
(c) only relaxed: each threshold is today's or more lenient, at a bona fide value rounded to
    the check's step (``round``) just past it, never at an attack;
then the fewest bona fide denied by any check, then the fewest checks moved, then the least
movement (in those standard deviations).

Pure functions of the rows (numpy); no model, no file. ``python -m device.eval.joint_thresholds
margins.json [--margin 1.0]`` prints the choice.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Check:
    name: str
    key: str          # the threshold's key in check_margins' thresholds
    term: str         # the row's value
    sense: str        # "above" (value > t passes), "atleast" (>=), "atmost" (<=)
    step: float       # the threshold's rounding
    logit: bool = False


CHECKS = (Check("live", "thr", "p_live", "above", 1e-4, logit=True),
          Check("binding", "max_score", "binding", "atmost", 0.1),
          Check("palm_lines", "min_palm_lines", "palm_lines", "atleast", 1e-4),
          Check("identity", "min_agreement", "agreement", "atleast", 1e-4),
          Check("lines_sum", "min_lines_sum", "lines_sum", "atleast", 0.01),
          Check("size", "max_off", "size_off", "atmost", 0.005))
"""The thresholds the rule may move (presence has none)."""

_EPS = 1e-6


def logit(p) -> np.ndarray:
    """log(p / (1 - p)) elementwise, p clipped to [1e-6, 1 - 1e-6]."""
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def goodness(c: Check, v) -> np.ndarray:
    """A check's values as "higher passes more" (``atmost``: negated; p(live): logit); NaN
    for a value not measured."""
    v = np.array([np.nan if x is None else float(x) for x in v], float)
    v[~np.isfinite(v)] = np.nan
    if c.logit:
        v = logit(v)
    return -v if c.sense == "atmost" else v


def level(c: Check, t: float) -> float:
    """A threshold on the :func:`goodness` scale."""
    g = float(logit(t)) if c.logit else float(t)
    return -g if c.sense == "atmost" else g


def passing(c: Check, g: np.ndarray, t: float) -> np.ndarray:
    """Which values pass threshold ``t`` (NaN never)."""
    u = level(c, t)
    with np.errstate(invalid="ignore"):
        return (g > u) if c.sense == "above" else (g >= u)


def admitting(c: Check, value: float) -> float:
    """The least-moved threshold on the check's step that passes ``value`` (the raw value)."""
    s = c.step
    if c.sense == "atmost":
        return round(math.ceil(value / s - 1e-9) * s, 10)
    t = round(math.floor(value / s + 1e-9) * s, 10)
    if c.sense == "above" and not value > t:
        t = round(t - s, 10)
    return t


def tail_sd(g: np.ndarray) -> float:
    """The spread of :func:`goodness` values toward the threshold: (median - 1st percentile)
    / 2.326, a normal's standard deviation (defined where most values sit at the best end --
    the X-ray binding's bona fide scores, 0 mm for most -- unlike the median absolute
    deviation)."""
    g = g[np.isfinite(g)]
    if not len(g):
        return float("nan")
    return float((np.median(g) - np.quantile(g, 0.01)) / 2.326)


def _matrix(rows: list, checks) -> np.ndarray:
    return np.stack([goodness(c, [r.get(c.term) for r in rows]) for c in checks], axis=1)


def choose(rows: list, today: dict, margin: float = 1.0, max_nodes: int = 2_000_000
           ) -> dict:
    """The rule of this module's docstring on ``rows`` (check_margins' rows: ``class``
    ``bona_fide`` or an attack species, ``presence`` None when present, each check's value)
    and ``today`` (check_margins' thresholds). Returns ``{"thresholds", "moved", "bona_fide":
    {n, denied_today, denied}, "attacks": {n, pass_all}, "sd", "nodes"}``."""
    checks = [c for c in CHECKS if today.get(c.key) is not None]
    bona = np.array([r["class"] == "bona_fide" for r in rows])
    present = np.array([r.get("presence") is None for r in rows])
    G = _matrix(rows, checks)
    sd = np.array([tail_sd(G[bona, j]) for j in range(len(checks))])
    if not np.all(np.isfinite(sd) & (sd > 0)):
        spread = {c.name: float(v) for c, v in zip(checks, sd)}
        raise ValueError(f"a check without bona fide spread: {spread}")
    t0 = [float(today[c.key]) for c in checks]

    def fails(ts):
        return np.stack([~passing(c, G[:, j], ts[j]) for j, c in enumerate(checks)], axis=1)

    F0 = fails(t0)
    att = ~bona
    open0 = att & present & ~F0.any(axis=1)

    def feasible(ts) -> bool:
        F = fails(ts)
        shut = att & ~open0
        if np.any(shut & present & ~F.any(axis=1)):                          # (a)
            return False
        moved = np.array([ts[j] != t0[j] for j in range(len(checks))])
        lost = shut & present & (np.any(F0 & ~F, axis=1) | np.any(F & moved[None, :], axis=1))
        if not lost.any():
            return True
        lv = np.array([level(c, ts[j]) for j, c in enumerate(checks)])
        room = (lv[None, :] - G[lost]) >= margin * sd[None, :]              # (b)
        room |= np.isnan(G[lost])
        return bool(np.all(np.any(F[lost] & room, axis=1)))

    cands = []
    for j, c in enumerate(checks):
        vals = {admitting(c, float(r[c.term])) for r, f in zip(rows, F0[:, j])
                if f and r["class"] == "bona_fide" and r.get("presence") is None
                and r.get(c.term) is not None and np.isfinite(r[c.term])}
        vals = [v for v in vals if level(c, v) < level(c, t0[j])]                # (c)
        cands.append([t0[j]] + sorted(vals, key=lambda v: -level(c, v)))

    def cost(ts):
        F = fails(ts)
        denied = int(np.sum(bona & (~present | F.any(axis=1))))
        moved = [j for j in range(len(checks)) if ts[j] != t0[j]]
        dist = sum((level(checks[j], t0[j]) - level(checks[j], ts[j])) / sd[j] for j in moved)
        return denied, len(moved), round(dist, 9)

    best, nodes = (cost(t0), list(t0)), 0

    def walk(j, ts):
        nonlocal best, nodes
        if j == len(checks):
            k = cost(ts)
            if k < best[0]:
                best = (k, list(ts))
            return
        for v in cands[j]:
            nodes += 1
            if nodes > max_nodes:
                raise RuntimeError("too many threshold vectors to search")
            trial = ts[:j] + [v] + ts[j + 1:]
            if v != t0[j] and not feasible(trial):
                break                                # monotone: more lenient is no better
            walk(j + 1, trial)

    walk(0, list(t0))
    ts = best[1]
    F = fails(ts)
    return {"thresholds": {c.key: ts[j] for j, c in enumerate(checks)},
            "today": {c.key: t0[j] for j, c in enumerate(checks)},
            "moved": [c.name for j, c in enumerate(checks) if ts[j] != t0[j]],
            "margin_sd": margin, "sd": {c.name: float(sd[j]) for j, c in enumerate(checks)},
            "bona_fide": {"n": int(bona.sum()),
                          "denied_today": int(np.sum(bona & (~present | F0.any(axis=1)))),
                          "denied": best[0][0]},
            "attacks": {"n": int(att.sum()), "pass_all_today": int(open0.sum()),
                        "pass_all": int(np.sum(att & present & ~F.any(axis=1)))},
            "nodes": nodes}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.joint_thresholds",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("margins", help="python -m device.eval.check_margins ... --out margins.json")
    ap.add_argument("--margin", type=float, default=1.0, help="room, in tail_sd units")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    with open(a.margins) as f:
        m = json.load(f)
    res = choose(m["rows"], m["thresholds"], a.margin)
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
