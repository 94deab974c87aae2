"""The terms of the NIR gate's palm-line checks for every presentation of a rendered set, each
computed whatever an earlier stage decided: the binding's outline score and palm-line agreement
(:mod:`device.gate.binding_texture`), the sensor identity agreement with the victim's enrolled
patches (:mod:`device.gate.sensor_identity`), their sum (:func:`~device.gate.sensor_identity.
lines_sum`, the signed ``min_lines_sum`` is chosen from it) and the views' hand size against
the enrolled (:mod:`device.gate.hand_size`), beside the gate's own decision.

::

    python -m device.eval.identity_lines_sum SET [--bona-fide N] [--species vein_film_over_live]
        [--precision int8] --out terms.json

``SET``: a whole-presentation NIR set (``python -m tools.synth liveness --presentations
--attack-species``); its people are enrolled as ``palmgate evaluate-liveness --enrol`` enrols
them (:func:`device.eval.synthetic_gate.enrol_people`). ``--bona-fide N``: the first N bona
fide presentations (folder order). Rows: class, folder, victim (``person``), attacker
(``other_person``), decision, reason, p(live), ``outline``, ``palm_lines``, ``identity``,
``lines_sum``, ``size_off``. Branch ``veinfilm``; docs/results.md "NIR vein_film_over_live at
the gate".
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _num(x):
    return None if x is None else float(x)


def terms(pipe, folder, people_uid) -> dict:
    """The row of one presentation (``people_uid``: person index -> enrolled user id)."""
    from device.gate import hand_size as H
    from device.gate import sensor_identity as S
    from device.sources.replay import read_burst
    bj = json.loads((Path(folder) / "burst.json").read_text())
    burst = read_burst(folder)
    d = pipe.decide(burst)
    r = {"folder": str(folder), "person": bj.get("person"), "other": bj.get("other_person"),
         "decision": d.decision, "reason": d.reason, "p_live": _num(d.p_live)}
    lm = d.landmarks
    if not lm or len(lm) < 2:
        return r
    b = pipe.binding.score(burst.views, burst.sensor, lm)
    r["outline"], r["palm_lines"] = float(b.score), _num(b.texture)
    ids = pipe.identity
    if b.probes is None or ids is None or bj.get("person") is None:
        return r
    n = ids.numbers or ids.load()
    t = ids.templates(people_uid(bj["person"]))
    if t:
        a = float(ids.agreement(t, burst.sensor, b.probes, n))
        r["identity"] = a
        r["lines_sum"] = _num(S.lines_sum(a, b.texture))
        hs = n.get("hand_size")
        if ids.sizes and hs:
            r["size_off"] = float(H.size_off(ids.size_ratio(b.probes, hs)))
    return r


def run(set_dir, out, bona_fide: int | None, species: list[str], precision: str = "int8",
        log=print) -> list[dict]:
    from device.eval.liveness_enrol import set_plan
    from device.eval.synthetic_gate import enrolled_gate, user_id
    info, plan = set_plan(set_dir, ["bona_fide", *species], {"bona_fide": bona_fide}, "nir")
    rows, t0 = [], time.time()
    with enrolled_gate(info, "nir", precision, 1, None,
                       "palmgate-lines-") as (pipe, st, _, _):
        for k, (cls, folder) in enumerate(plan):
            rows.append({"class": cls, **terms(pipe, folder, user_id)})
            if (k + 1) % 100 == 0:
                log(f"{k + 1}/{len(plan)} {time.time() - t0:.0f} s")
    Path(out).write_text(json.dumps(rows, indent=0))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m device.eval.identity_lines_sum",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("set_dir")
    ap.add_argument("--bona-fide", type=int, default=None)
    ap.add_argument("--species", nargs="*", default=["vein_film_over_live"])
    ap.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    run(a.set_dir, a.out, a.bona_fide, a.species, a.precision)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
