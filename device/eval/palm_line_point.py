"""The palm-line check's operating point, chosen on validation presentations.

The NIR binding denies a presentation when the outline's binding score is over ``max_score``
or the palm lines' agreement (:mod:`device.gate.binding_texture`) is under ``min_agreement``
(or could not be measured). The two are chosen together (:data:`RULE`) on the rows of
:func:`device.eval.binding_eval.evaluate` (``score``, ``texture``), and written into the
signed ``models/binding_nir.json`` as ``palm_lines`` (:func:`write_palm_lines`; the release
step re-signs the manifest). Pure functions of the rows, apart from the writing.
"""
from __future__ import annotations

import math

BONA_FIDE_RATE = 0.005
"""At most this share of the scored bona fide presentations may be denied by the binding."""

RULE = ("the pair (outline max_score, palm-line min_agreement) that denies the most mixed "
        "presentations while denying at most 0.5 % of the scored bona fide validation "
        "presentations (a hand that cannot be placed, or whose lines cannot be compared, "
        "counts as denied); max_score a placed bona fide score rounded up to 0.1 mm, "
        "min_agreement a bona fide agreement rounded down to 1e-4")


def _texture(r) -> float:
    t = r.get("texture")
    return -math.inf if t is None or not math.isfinite(t) else float(t)


def _denied(r, max_score: float, min_agreement: float) -> bool:
    return not r["score"] <= max_score or not _texture(r) >= min_agreement


def choose_point(rows: list[dict], rate: float = BONA_FIDE_RATE) -> dict:
    """:data:`RULE` at the bona fide share ``rate``: ``{"max_score", "min_agreement",
    "bona_fide_denied", "bona_fide", "mixed_denied", "mixed"}``. ``rows``: dicts with
    ``kind`` ("bona_fide" / "attack"), ``score`` (None: failed to acquire, left out; 1e9: not
    placed) and ``texture`` (None or NaN: not compared). ValueError when no pair keeps to the
    share."""
    scored = [r for r in rows if r.get("score") is not None]
    bf = [r for r in scored if r["kind"] == "bona_fide"]
    at = [r for r in scored if r["kind"] == "attack"]
    if not bf:
        raise ValueError("no scored bona fide presentation to choose on")
    allowed = int(math.floor(rate * len(bf) + 1e-9))
    outlines = sorted({math.ceil(r["score"] * 10 - 1e-9) / 10 for r in bf
                       if r["score"] < 1e9 and r["score"] > 0} | {0.1})
    best = None
    for mx in outlines:
        passing = sorted(_texture(r) for r in bf if r["score"] <= mx)
        budget = allowed - (len(bf) - len(passing))
        if budget < 0 or budget >= len(passing) or not math.isfinite(passing[budget]):
            continue
        mn = math.floor(passing[budget] * 1e4) / 1e4
        nb = sum(_denied(r, mx, mn) for r in bf)
        na = sum(_denied(r, mx, mn) for r in at)
        key = (na, -nb, mx)
        if best is None or key > best[0]:
            best = (key, {"max_score": mx, "min_agreement": mn, "bona_fide_denied": nb,
                          "bona_fide": len(bf), "mixed_denied": na, "mixed": len(at)})
    if best is None:
        raise ValueError(f"no operating point denies at most {allowed} of {len(bf)} bona fide")
    return best[1]


def operating_points(rows: list[dict]) -> dict:
    """The points at 0.5 % and 1 % of bona fide denied (reported by ``binding_eval``); a point
    that cannot be reached is left out."""
    out = {}
    for rate in (BONA_FIDE_RATE, 0.01):
        try:
            out[f"{rate:g}"] = choose_point(rows, rate)
        except ValueError:
            pass
    return out


def write_palm_lines(sensor: str, rows: list[dict], command: str, data: str,
                     models_dir=None) -> tuple[float, float]:
    """Choose the point (:data:`RULE`) on the validation ``rows`` and write it into the
    signed ``models/binding_<sensor>.json`` as ``palm_lines`` (with the command, rule and the
    1 % point for reference); returns ``(max_score, min_agreement)``. The manifest must be
    re-signed after (docs/model-signing.md)."""
    from device.eval.binding_release import write_numbers
    p = choose_point(rows)
    pts = operating_points(rows)
    block = {"min_agreement": p["min_agreement"], "max_score": p["max_score"],
             "rule": RULE, "command": command, "data": data,
             "validation": {k: p[k] for k in ("bona_fide_denied", "bona_fide",
                                              "mixed_denied", "mixed")},
             "point_1pct": pts.get("0.01")}
    write_numbers(sensor, {"palm_lines": block}, command=command, data=data,
                  metrics={"palm_lines_validation": block["validation"],
                           "palm_lines_point_1pct": block["point_1pct"]},
                  models_dir=models_dir, add=True)
    return p["max_score"], p["min_agreement"]
