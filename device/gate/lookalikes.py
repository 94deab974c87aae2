"""Sensor-side identification among look-alikes: the pure part (numbers, lists, the decision).

The identity stage (:mod:`device.gate.sensor_identity_stage`) compares the sensor frame's
identity feature with the identified person's own templates only. Two enrolled people whose
X-ray bone patches agree like one person's do ("look-alikes") defeat that comparison: the
attacker's own live hand under the sensor, with a replica of the victim's palm before the
cameras, agrees with the victim's bone templates over the signed ``min_agreement`` (branch
``xscale``: 1.40 % of pairs of a 200-person gallery agree at 0.80 or more, 6 pairs over the
signed 0.8904, and the five closest pairs' attacks opened 41 of 100 at the signed numbers;
docs/results.md).

So each enrolled person keeps a **look-alike list**: the enrolled people whose templates
agree with theirs at ``S >= LIST_FLOOR`` (``S`` = :func:`pair_agreement`). Once the frame's
patch, lines and size passed for the claimed person, the stage compares the frame also with
the templates of the claimed person's look-alikes with ``S >=`` the signed
``min_pair_agreement`` (the ``most`` closest, :func:`to_compare`), and denies when one of
them agrees with the frame more than the claimed person does by more than the signed
``lead`` (:func:`out_agreed`): the frame is then more likely that person's hand than the
claimed one's. It stops only attackers who are enrolled (there are no templates of anyone
else's bones to out-agree the victim's).

The lists live in the store as sealed sensor rows of their own kind
(:data:`device.store.sensor_templates.LIST_KIND`), so they have the templates' integrity:
a list deleted or changed outside the store denies (``error:identity``), it never reads as
"no look-alikes". They are made at enrolment, both ways, in the enrolment's transaction
(:mod:`device.gate.lookalike_lists`).

Numbers: ``sensor_identity.lookalikes`` of ``models/binding_<sensor>.json``
(:func:`lookalike_numbers`; absent: no check). Pure functions; no file, no model.
"""
from __future__ import annotations

import json
import math

from device.gate.binding_joints import finite_number
from device.gate.bone_prefilter import prefilter_numbers

LIST_FLOOR = 0.75
"""The lowest pair agreement a list keeps: a signed ``min_pair_agreement`` may not be under it
(the lists would miss pairs between the two)."""

MOST_KEPT = 1000
"""The most entries one list keeps (the closest; about 3 % of 30,000 people at the floor)."""

MAX_MOST = 64
"""The most look-alikes a signed ``most`` may compare at one decision (each ~5 ms)."""

_MAGIC = "palmgate/lookalikes/1"


def lookalike_numbers(si: dict) -> dict | None:
    """The signed ``lookalikes`` block of a ``sensor_identity`` block: ``min_pair_agreement``
    (in [:data:`LIST_FLOOR`, 1)), ``lead`` (in [0, 0.2]) and ``most`` (1..:data:`MAX_MOST`),
    and ``prefilter`` where signed (:func:`device.gate.bone_prefilter.prefilter_numbers`);
    None when absent (no check). ValueError when malformed."""
    v = si.get("lookalikes")
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ValueError("'sensor_identity' 'lookalikes' is not an object")
    s, d, k = v.get("min_pair_agreement"), v.get("lead"), v.get("most")
    if not (finite_number(s) and LIST_FLOOR <= s < 1.0):
        raise ValueError(f"'lookalikes' 'min_pair_agreement' must be a number in "
                         f"[{LIST_FLOOR}, 1)")
    if not (finite_number(d) and 0.0 <= d <= 0.2):
        raise ValueError("'lookalikes' 'lead' must be a number in [0, 0.2]")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_MOST:
        raise ValueError(f"'lookalikes' 'most' must be an integer in 1..{MAX_MOST}")
    out = {"min_pair_agreement": float(s), "lead": float(d), "most": k}
    pre = prefilter_numbers(v)
    if pre is not None:         # the lists' cheap first look (device.gate.bone_prefilter)
        out["prefilter"] = pre
    return out


def pair_agreement(mine: list, theirs: list, agree) -> float:
    """``S``: how alike two people's enrolled templates are -- the best agreement of one's
    template (as the probe) with the other's templates (``agree(templates, probe)``, the
    gate's :func:`~device.gate.sensor_identity.best_agreement` with its shift and turns),
    over both ways round; NaN when none compares."""
    best = float("nan")
    for probes, tmpls in ((mine, theirs), (theirs, mine)):
        for p in probes:
            r = agree(tmpls, p)
            if math.isfinite(r) and not r <= best:
                best = float(r)
    return best


def merged(entries: dict, user_id: str, s: float | None) -> dict:
    """A list (``{user_id: S}``) with ``user_id``'s entry replaced by ``s`` -- or dropped
    when ``s`` is None, NaN or under :data:`LIST_FLOOR` -- and cut to the
    :data:`MOST_KEPT` closest."""
    out = {u: v for u, v in entries.items() if u != user_id}
    if s is not None and math.isfinite(s) and s >= LIST_FLOOR:
        out[user_id] = round(float(s), 4)
    if len(out) > MOST_KEPT:
        out = dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))[:MOST_KEPT])
    return out


def list_to_bytes(entries: dict) -> bytes:
    """A look-alike list as the bytes the store seals (canonical JSON; every list is a
    row, the empty one too: a person with no look-alikes)."""
    return json.dumps({"format": _MAGIC, "lookalikes": dict(sorted(entries.items()))},
                      sort_keys=True, separators=(",", ":")).encode()


def list_from_bytes(blob: bytes) -> dict:
    """``{user_id: S}`` of the bytes :func:`list_to_bytes` wrote; ValueError otherwise."""
    try:
        doc = json.loads(bytes(blob).decode())
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not a look-alike list") from None
    if not isinstance(doc, dict) or doc.get("format") != _MAGIC:
        raise ValueError("not a look-alike list")
    e = doc.get("lookalikes")
    if not isinstance(e, dict) or not all(isinstance(u, str) and finite_number(s)
                                          for u, s in e.items()):
        raise ValueError("a look-alike list's entries are user ids with numbers")
    return {u: float(s) for u, s in e.items()}


def to_compare(entries: dict, numbers: dict, claimed: str) -> list[str]:
    """The look-alikes a decision compares: those with ``S >= min_pair_agreement``, the
    ``most`` closest (the closest first; ties by id), never the claimed person."""
    t = numbers["min_pair_agreement"]
    ok = [(s, u) for u, s in entries.items() if s >= t and u != claimed]
    return [u for s, u in sorted(ok, key=lambda x: (-x[0], x[1]))[:numbers["most"]]]


def newcomers(waiting: list | None, numbers: dict, claimed: str, compared: list) -> list[str]:
    """The people without a list yet (``waiting``, newest first: received from another gate
    and not yet listed by the gate's upkeep, :mod:`device.gate.lookalike_upkeep`) a decision
    compares too, since no list says whether they look like the claimed person: all of them
    when they are at most ``most`` (a site's usual trickle), none when more (``waiting``
    None: an upgrade or a gate recovered with its users, said at the gate's start and in
    ``palmgate status``); never the claimed person or one compared already."""
    if not waiting or len(waiting) > numbers["most"]:
        return []
    return [u for u in waiting if u != claimed and u not in compared]


def out_agreed(own: float, others: dict, lead: float) -> str | None:
    """The look-alike whose agreement with the frame beats the claimed person's ``own`` by more
    than ``lead`` (the largest such), else None; a look-alike that compares no area (NaN) is
    passed over, an ``own`` that is NaN never gets here (the patch check denied it)."""
    best, who = -math.inf, None
    for u, a in others.items():
        if math.isfinite(a) and a - own > lead and a > best:
            best, who = a, u
    return who
